"""The batch path (routing.engine.batch) against the reference, `policy.evaluate` item by item: on random
batches of fresh items and random policies, every decision field, the stored inputs and the digest agree."""

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.decision_inputs import inputs_to_dict
from routing.engine.batch import (
    FreshInputs,
    FreshItems,
    batch_covers,
    evaluate_fresh,
    prediction_usable,
    rounded,
)
from routing.engine.policy import DEFAULT_POLICY, evaluate, inputs_digest
from routing.engine.signals import SIGNAL_NAMES
from routing.engine.types import (
    Comparison,
    FeatureRule,
    ItemInput,
    PolicyConfig,
    PredictionInput,
    Trigger,
    json_ready,
)

CLASS_NAMES = ("cat", "dog", "fox", "émeu", "b", "class_10", "Z")

# Values that sit on the thresholds and on each other (ties, exact margins) as well as arbitrary ones.
edge_probability = st.sampled_from([0.0, 0, 1, 1.0, 0.5, 0.25, 0.2, 0.4, 0.6, 0.9, 0.1, 1e-9, 1e-300, 3.0, 0.333])
probability = st.one_of(edge_probability, st.floats(min_value=0, max_value=5, allow_nan=False))
threshold = st.one_of(
    st.sampled_from([0.0, 0, 1, 0.5, 0.2, 0.9, 0.6, 0.4, 0.25, 1e-6]), st.floats(min_value=0, max_value=1)
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5))
payload = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
    st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)


@st.composite
def policies(draw):
    triggers = tuple(
        Trigger(
            signal=draw(st.sampled_from([*SIGNAL_NAMES, "no_such_signal"])),
            comparison=draw(st.sampled_from(list(Comparison))),
            threshold=draw(st.one_of(threshold, st.integers(-1, 3))),
            reason_code=f"t{n}",
        )
        for n in range(draw(st.integers(0, 3)))
    )
    overlap = draw(st.integers(1, 3))
    return PolicyConfig(
        auto_accept_min_top_probability=draw(threshold),
        auto_accept_min_margin=draw(threshold),
        auto_accept_max_entropy=draw(threshold),
        crowd_overlap=overlap,
        max_crowd_labels=overlap + draw(st.integers(0, 5)),
        triggers=triggers,
        model_prior_weight=draw(st.sampled_from([0, 0.0, 0.5, 1, 1.0, 2.0, 3.7])),
        class_prior_weight=draw(st.sampled_from([0.0, 1.0])),
        target_labels_per_item=draw(st.sampled_from([0.0, 2.0])),
        learn_model_temperature=draw(st.booleans()),
    )


@st.composite
def batches(draw):
    k = draw(st.integers(1, len(CLASS_NAMES)))
    classes = tuple(draw(st.permutations(CLASS_NAMES))[:k])
    temperature = draw(st.sampled_from([None, 1.0, 0.5, 2, 3.3, 0.05, 20.0]))
    prior = draw(st.one_of(st.just(()), st.lists(st.floats(0.01, 1), min_size=k, max_size=k).map(tuple)))
    spent = draw(st.sampled_from([None, 0.0, 1.5, 3.0]))
    items = []
    for n in range(draw(st.integers(1, 25))):
        predictions = ()
        if draw(st.integers(0, 5)):
            names = draw(st.lists(st.sampled_from(classes), min_size=1, unique=True))
            probabilities = {name: draw(probability) for name in names}
            if sum(probabilities.values()) > 0:
                predictions = (PredictionInput(id=100 + n, model_version=draw(st.sampled_from(["v1", "m/ü"])),
                    probabilities=probabilities),)
        items.append(ItemInput(
            item_id=1000 + n,
            classes=classes,
            predictions=predictions,
            data=draw(st.one_of(st.fixed_dictionaries({"text": st.text(max_size=8)}), payload)),
            metadata=draw(st.one_of(st.just({}), st.dictionaries(st.text(max_size=4), payload, max_size=2))),
            language=draw(st.sampled_from(["", "en", "de"])),
            domain=draw(st.sampled_from(["", "medical/radiology", "bench/ä"])),
            class_prior=prior,
            project_labels_per_item=spent,
            model_temperature=temperature,
        ))
    return items


def batch_of(items):
    first = items[0]
    return FreshItems.build(
        first.classes,
        [i.item_id for i in items],
        [i.predictions[0].probabilities if i.predictions else None for i in items],
        first.model_temperature,
    )


def as_json(value):
    return json.dumps(json_ready(value), sort_keys=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=batches(), policy=policies())
def test_batch_decides_as_evaluate_does_field_by_field(items, policy):
    decisions = evaluate_fresh(batch_of(items), policy)
    assert len(decisions) == len(items)
    for item, decision in zip(items, decisions):
        reference = evaluate(item, policy, {})
        for name in ("outcome", "final_label", "final_source", "confidence", "posterior", "signals", "reasons",
            "labels_requested"):
            assert getattr(decision, name) == getattr(reference, name), name
        # As stored: the same types (0 and 0.0) and signs (-0.0) in every number.
        assert json.dumps(decision.to_dict()) == json.dumps(reference.to_dict())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(items=batches(), policy=policies())
def test_batch_inputs_and_digest_are_the_reference_ones(items, policy):
    first = items[0]
    inputs = FreshInputs(policy, first.classes, class_prior=first.class_prior,
        project_labels_per_item=first.project_labels_per_item, model_temperature=first.model_temperature)
    for item in items:
        prediction = item.predictions[0] if item.predictions else None
        stored, digest = inputs.documents(
            item.item_id,
            (prediction.id, prediction.model_version, prediction.probabilities) if prediction else None,
            item.data, item.metadata, item.language, item.domain,
        )
        assert digest == inputs_digest(item, policy, {})
        assert as_json(json.loads(stored)) == as_json(inputs_to_dict(item, {}))


def test_default_policy_on_a_large_random_batch():
    """Many items through the policy new projects start from, a temperature learned: the bench's case."""
    rng = np.random.default_rng(3)
    classes = tuple(f"class_{c}" for c in range(5))
    probabilities = rng.dirichlet(np.full(5, 0.3), size=3000)
    items = [
        ItemInput(item_id=i, classes=classes, model_temperature=0.8, predictions=(
            PredictionInput(id=i, model_version="m", probabilities=dict(zip(classes, row.tolist()))),))
        for i, row in enumerate(probabilities)
    ]
    decisions = evaluate_fresh(batch_of(items), DEFAULT_POLICY)
    assert {d.outcome for d in decisions} == {"accept", "crowd"}
    assert decisions == [evaluate(item, DEFAULT_POLICY, {}) for item in items]


@pytest.mark.parametrize("probabilities", [
    {"cat": True}, {"cat": -0.1}, {"cat": math.nan}, {"cat": math.inf}, {"wolf": 0.5}, {"cat": 0.0}, {"cat": "0.5"},
])
def test_a_prediction_evaluate_refuses_is_not_taken(probabilities):
    assert not prediction_usable(probabilities, ("cat", "dog"))
    with pytest.raises(ValueError):
        FreshItems.build(("cat", "dog"), [1], [probabilities])


@pytest.mark.parametrize("policy", [
    PolicyConfig(feature_rules=(FeatureRule("data.text", "present", None, "has_text"),)),
    PolicyConfig(metadata_conflict_field="source"),
])
def test_policies_reading_payloads_are_not_covered(policy):
    assert not batch_covers(policy)
    with pytest.raises(ValueError):
        evaluate_fresh(FreshItems.build(("cat", "dog"), [1], [None]), policy)



half_way = st.integers(0, 4 * 10**12).map(lambda m: (m + 0.5) / 1e12)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-6, 6), half_way, st.floats(allow_nan=False)), min_size=1, max_size=40))
def test_array_rounding_is_pythons_round_bit_for_bit(values):
    got = rounded(np.array(values)).tolist()
    assert [struct.pack("<d", v) for v in got] == [struct.pack("<d", round(v, 12)) for v in values]
