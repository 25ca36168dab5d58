"""Policy evaluation: trigger boundaries, auto-accept, crowd to consensus, escalation, experts, digests."""

import dataclasses
import hashlib

import pytest

from routing.decision_inputs import inputs_to_dict
from routing.engine.policy import (
    canonical_json,
    decision_inputs,
    evaluate,
    inputs_digest,
    policy_errors,
    stored_inputs_digest,
    trigger_fires,
)
from routing.engine.signals import SIGNAL_NAMES
from routing.engine.types import (
    AnnotationInput,
    AnnotatorReliability,
    Comparison,
    FeatureRule,
    ItemInput,
    Outcome,
    PolicyConfig,
    PredictionInput,
    Reason,
    Trigger,
)

CLASSES = ("cat", "dog", "fox")

# The engine's rules under the thresholds these tests were written for (PolicyConfig's own defaults);
# DEFAULT_POLICY, what new projects start from, is tested in test_adaptive_labels.py.
DEFAULT_POLICY = PolicyConfig()


def make_item(probs=None, labels=(), *, classes=CLASSES, metadata=None, data=None, predictions=None):
    """labels: (label, annotator_id, role) or (label, annotator_id) for crowd."""
    if predictions is None:
        predictions = (PredictionInput(id=1, model_version="v1", probabilities=probs),) if probs else ()
    annotations = tuple(
        AnnotationInput(id=n, annotator_id=spec[1], label=spec[0], role=spec[2] if len(spec) > 2 else "crowd")
        for n, spec in enumerate(labels, start=1)
    )
    return ItemInput(
        item_id=1,
        classes=classes,
        predictions=predictions,
        annotations=annotations,
        data=data or {},
        metadata=metadata or {},
    )


def reliable(*annotator_ids, accuracy=0.95, k=3):
    off = (1 - accuracy) / (k - 1)
    matrix = tuple(tuple(accuracy if t == g else off for g in range(k)) for t in range(k))
    return {a: AnnotatorReliability(annotator_id=a, confusion=matrix, n_observations=50) for a in annotator_ids}


def binary(p):
    return {"cat": p, "dog": round(1 - p, 10)}


# -- triggers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "comparison, value, threshold, fires",
    [
        (Comparison.LT, 0.70, 0.70, False),
        (Comparison.LT, 0.6999, 0.70, True),
        (Comparison.LE, 0.70, 0.70, True),
        (Comparison.LE, 0.7001, 0.70, False),
        (Comparison.GT, 0.70, 0.70, False),
        (Comparison.GT, 0.7001, 0.70, True),
        (Comparison.GE, 0.70, 0.70, True),
        (Comparison.GE, 0.6999, 0.70, False),
        (Comparison.EQ, 0.70, 0.70, True),
        (Comparison.EQ, 0.7001, 0.70, False),
        (Comparison.NE, 0.70, 0.70, False),
        (Comparison.NE, 0.6999, 0.70, True),
    ],
)
def test_trigger_on_top_probability_at_its_boundary(comparison, value, threshold, fires):
    policy = PolicyConfig(triggers=(Trigger("top_probability", comparison, threshold, "check_top"),))
    decision = evaluate(make_item(binary(value)), policy, {})
    assert (decision.outcome == Outcome.EXPERT) is fires
    assert any(r.code == "check_top" for r in decision.reasons) is fires


@pytest.mark.parametrize(
    "probs, fires",
    [
        ({"cat": 0.6, "dog": 0.4}, False),  # margin 0.20 is not < 0.20 (even though 0.6 - 0.4 < 0.2 in floats)
        ({"cat": 0.59995, "dog": 0.40005}, True),  # margin 0.1999
    ],
)
def test_low_margin_trigger_boundary(probs, fires):
    policy = PolicyConfig(triggers=(Trigger("margin", Comparison.LT, 0.20, "low_margin"),))
    decision = evaluate(make_item(probs), policy, {})
    assert (decision.outcome == Outcome.EXPERT) is fires
    if fires:
        assert decision.reasons == (Reason("low_margin", "margin 0.1999 < 0.20"),)
        assert decision.labels_requested == 1


@pytest.mark.parametrize("value", [None, 0.0])
def test_trigger_fires_never_on_none(value):
    trigger = Trigger("agreement", Comparison.LE, 0.0, "x")
    assert trigger_fires(trigger, value) is (value is not None)


def test_none_signal_does_not_escalate():
    policy = PolicyConfig(triggers=(Trigger("agreement", Comparison.LT, 0.5, "low_agreement"),))
    assert evaluate(make_item(binary(0.5)), policy, {}).outcome == Outcome.CROWD


def test_each_cause_gets_its_own_reason():
    policy = PolicyConfig(
        triggers=(
            Trigger("margin", Comparison.LT, 0.20, "low_margin"),
            Trigger("entropy", Comparison.GT, 0.6, "high_entropy"),
        ),
        feature_rules=(FeatureRule(field="data.text", operator="len_gt", value=10, reason_code="long_text"),),
        metadata_conflict_field="source_tag",
    )
    item = make_item({"cat": 0.55, "dog": 0.45}, metadata={"source_tag": "dog"}, data={"text": "x" * 20})
    decision = evaluate(item, policy, {})
    assert decision.outcome == Outcome.EXPERT
    assert decision.reasons == (
        Reason("low_margin", "margin 0.10 < 0.20"),
        Reason("high_entropy", "entropy 0.63 > 0.60"),  # over 3 classes: 0.688 nats / log 3
        Reason("long_text", "data.text length 20 > 10"),
        Reason("metadata_conflict", "metadata.source_tag 'dog' contradicts predicted 'cat'"),
    )


def test_metadata_conflict_alone_escalates_a_confident_prediction():
    policy = PolicyConfig(metadata_conflict_field="metadata.source_tag")
    confident = {"cat": 0.99, "dog": 0.01}
    assert evaluate(make_item(confident, metadata={"source_tag": "dog"}), policy, {}).outcome == Outcome.EXPERT
    assert evaluate(make_item(confident, metadata={"source_tag": "cat"}), policy, {}).outcome == Outcome.ACCEPT


def test_triggers_apply_after_crowd_labels_too():
    policy = PolicyConfig(triggers=(Trigger("distinct_labels", Comparison.GE, 3, "three_way_split"),))
    item = make_item(binary(0.5), [("cat", 1), ("dog", 2), ("fox", 3)])
    decision = evaluate(item, policy, {})
    assert decision.outcome == Outcome.EXPERT
    assert decision.reasons == (Reason("three_way_split", "distinct labels 3 >= 3"),)


# -- auto-accept ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probs, policy_fields, accepted, failed_codes",
    [
        # top probability boundary (margin 0.8, entropy 0.47 pass the defaults)
        ({"cat": 0.9, "dog": 0.1}, {}, True, []),
        (
            {"cat": 0.8999, "dog": 0.1001},
            {"auto_accept_min_margin": 0.0, "auto_accept_max_entropy": 1.0},
            False,
            ["low_top_probability"],
        ),
        # margin boundary
        ({"cat": 0.9, "dog": 0.1}, {"auto_accept_min_margin": 0.8}, True, []),
        ({"cat": 0.9, "dog": 0.1}, {"auto_accept_min_margin": 0.8001}, False, ["low_margin"]),
        # entropy boundary: a certain prediction has entropy exactly 0
        ({"cat": 1.0}, {"auto_accept_max_entropy": 0.0}, True, []),
        ({"cat": 0.999, "dog": 0.001}, {"auto_accept_max_entropy": 0.0}, False, ["high_entropy"]),
        # all three fail
        ({"cat": 0.41, "dog": 0.39, "fox": 0.2}, {}, False, ["low_top_probability", "low_margin", "high_entropy"]),
    ],
)
def test_auto_accept_boundaries(probs, policy_fields, accepted, failed_codes):
    policy = dataclasses.replace(DEFAULT_POLICY, **policy_fields)
    decision = evaluate(make_item(probs), policy, {})
    if accepted:
        assert decision.outcome == Outcome.ACCEPT
        assert (decision.final_label, decision.final_source) == ("cat", "model")
        assert decision.confidence == probs["cat"]
        assert [r.code for r in decision.reasons] == ["top_probability_ok", "margin_ok", "entropy_ok"]
    else:
        assert decision.outcome == Outcome.CROWD
        assert decision.labels_requested == policy.crowd_overlap
        assert [r.code for r in decision.reasons] == failed_codes


def test_failed_threshold_evidence_in_words():
    decision = evaluate(make_item({"cat": 0.41, "dog": 0.39, "fox": 0.2}), DEFAULT_POLICY, {})
    assert decision.reasons[0] == Reason("low_top_probability", "top probability 0.41 < 0.90")
    assert decision.reasons[1] == Reason("low_margin", "margin 0.02 < 0.50")


def test_accept_evidence_states_each_threshold_passed():
    decision = evaluate(make_item({"cat": 0.95, "dog": 0.05}), DEFAULT_POLICY, {})
    assert decision.reasons[0] == Reason("top_probability_ok", "top probability 0.95 >= 0.90")
    assert decision.reasons[1] == Reason("margin_ok", "margin 0.90 >= 0.50")


def test_crowd_feature_rule_blocks_auto_accept():
    rule = FeatureRule(
        field="metadata.source", operator="eq", value="forum", reason_code="forum_source", action="crowd"
    )
    policy = PolicyConfig(feature_rules=(rule,))
    decision = evaluate(make_item({"cat": 0.99, "dog": 0.01}, metadata={"source": "forum"}), policy, {})
    assert decision.outcome == Outcome.CROWD
    assert decision.reasons == (Reason("forum_source", "metadata.source 'forum' == 'forum'"),)


def test_expert_feature_rule_escalates():
    rule = FeatureRule(field="data.text", operator="matches", value=r"\blawsuit\b", reason_code="legal")
    policy = PolicyConfig(feature_rules=(rule,))
    decision = evaluate(make_item({"cat": 0.99, "dog": 0.01}, data={"text": "a lawsuit about cats"}), policy, {})
    assert decision.outcome == Outcome.EXPERT
    assert decision.reasons[0].code == "legal"


def test_no_prediction_goes_to_the_crowd():
    decision = evaluate(make_item(), PolicyConfig(crowd_overlap=3, max_crowd_labels=5), {})
    assert decision.outcome == Outcome.CROWD
    assert decision.labels_requested == 3
    assert decision.reasons == (Reason("no_prediction", "no model prediction"),)
    assert decision.posterior == {}


# -- crowd and consensus ----------------------------------------------------------------------------


def test_crowd_then_consensus_then_accept():
    probs = {"cat": 0.6, "dog": 0.4}
    annotators = reliable(11, 12)
    first = evaluate(make_item(probs, [("dog", 11)]), DEFAULT_POLICY, annotators)
    assert first.outcome == Outcome.CROWD
    assert first.labels_requested == 1
    assert first.reasons[0] == Reason("need_crowd_labels", "crowd labels 1 < 2")

    second = evaluate(make_item(probs, [("dog", 11), ("dog", 12)]), DEFAULT_POLICY, annotators)
    # dog ∝ 0.4 · 0.95², cat ∝ 0.6 · 0.025², fox ∝ 0 (floored) · 0.025²
    dog, cat = 0.4 * 0.95**2, 0.6 * 0.025**2
    assert second.outcome == Outcome.ACCEPT
    assert (second.final_label, second.final_source) == ("dog", "consensus")
    assert second.confidence == pytest.approx(dog / (dog + cat), abs=1e-6)
    assert [r.code for r in second.reasons] == ["enough_crowd_labels", "agreement_ok", "posterior_ok"]


def test_low_posterior_asks_for_one_more_label():
    # Unknown annotators at 0.7 against a model prior for cat: dog ∝ 0.4·0.7³, cat ∝ 0.6·0.3³, so 0.89 < 0.90.
    item = make_item({"cat": 0.6, "dog": 0.4}, [("dog", 1), ("dog", 2), ("dog", 3)], classes=("cat", "dog"))
    decision = evaluate(item, DEFAULT_POLICY, {})
    assert decision.outcome == Outcome.CROWD
    assert decision.labels_requested == 1
    assert decision.reasons == (Reason("low_posterior", "posterior 0.89 < 0.90"),)


@pytest.mark.parametrize(
    "overlap, labels, wanted",
    [
        (3, [("cat", 1)], 2),
        (3, [("cat", 1), ("dog", 2)], 1),
        (2, [("cat", 1), ("dog", 2)], 1),
        (2, [("cat", 1), ("dog", 2), ("cat", 3), ("dog", 4)], 1),
    ],
)
def test_crowd_requests_up_to_the_overlap(overlap, labels, wanted):
    policy = PolicyConfig(crowd_overlap=overlap, max_crowd_labels=5)
    decision = evaluate(make_item(binary(0.5), labels), policy, {})
    assert decision.outcome == Outcome.CROWD
    assert decision.labels_requested == wanted


def test_no_consensus_after_max_labels_escalates():
    labels = [("cat", 1), ("dog", 2), ("cat", 3), ("dog", 4), ("cat", 5)]
    item = make_item(binary(0.5), labels, classes=("cat", "dog"))
    decision = evaluate(item, PolicyConfig(max_crowd_labels=5), {})
    # cat ∝ 0.7³·0.3², dog ∝ 0.3³·0.7²: posterior 0.70
    assert decision.outcome == Outcome.EXPERT
    assert decision.labels_requested == 1
    assert decision.reasons == (
        Reason("no_consensus", "agreement 0.60 < 0.66, posterior 0.70 < 0.90 after 5 crowd labels"),
    )


def test_unanimous_crowd_with_reliable_annotators_is_accepted_without_a_model():
    labels = [("fox", 1), ("fox", 2)]
    decision = evaluate(make_item(None, labels), DEFAULT_POLICY, reliable(1, 2))
    assert (decision.outcome, decision.final_label, decision.final_source) == (Outcome.ACCEPT, "fox", "consensus")


def test_posterior_against_the_crowd_majority_is_not_called_consensus():
    # A very confident model prior for cat outweighs two unknown crowd annotators saying dog.
    policy = PolicyConfig(consensus_min_posterior=0.5, max_crowd_labels=5)
    decision = evaluate(make_item({"cat": 0.995, "dog": 0.005}, [("dog", 1), ("dog", 2)]), policy, {})
    assert decision.outcome == Outcome.CROWD
    assert "posterior_not_majority" in [r.code for r in decision.reasons]


# -- crowd overdue ----------------------------------------------------------------------------------


def test_overdue_crowd_work_goes_to_an_expert_with_the_crowd_reasons_kept():
    item = make_item({"cat": 0.6, "dog": 0.4}, [("dog", 11)])
    on_time = evaluate(item, DEFAULT_POLICY, {})
    late = evaluate(dataclasses.replace(item, crowd_overdue=True), DEFAULT_POLICY, {})
    assert on_time.outcome == Outcome.CROWD
    assert (late.outcome, late.labels_requested) == (Outcome.EXPERT, 1)
    assert late.reasons == (Reason("crowd_overdue", "crowd slots unclaimed past the SLA deadline"), *on_time.reasons)
    assert late.posterior == on_time.posterior and late.signals == on_time.signals


def test_overdue_unlabeled_item_without_a_prediction_goes_to_an_expert():
    late = evaluate(dataclasses.replace(make_item(), crowd_overdue=True), DEFAULT_POLICY, {})
    assert late.outcome == Outcome.EXPERT
    assert [r.code for r in late.reasons] == ["crowd_overdue", "no_prediction"]


@pytest.mark.parametrize(
    "labels",
    [
        [("dog", 11), ("dog", 12)],  # consensus: accepted
        [("cat", 9, "expert")],  # an expert's label: accepted
    ],
)
def test_being_overdue_changes_no_decision_but_more_crowd_work(labels):
    item = make_item({"cat": 0.6, "dog": 0.4}, labels)
    on_time = evaluate(item, DEFAULT_POLICY, reliable(11, 12))
    late = evaluate(dataclasses.replace(item, crowd_overdue=True), DEFAULT_POLICY, reliable(11, 12))
    assert on_time.outcome == Outcome.ACCEPT and late == on_time


def test_overdue_is_stored_only_when_set_so_earlier_digests_stand():
    item = make_item({"cat": 0.6, "dog": 0.4}, [("dog", 11)])
    assert "crowd_overdue" not in item.to_dict()
    late = dataclasses.replace(item, crowd_overdue=True)
    assert late.to_dict()["crowd_overdue"] is True
    assert ItemInput.from_dict(late.to_dict()) == late and ItemInput.from_dict(item.to_dict()) == item
    assert inputs_digest(late, DEFAULT_POLICY, {}) != inputs_digest(item, DEFAULT_POLICY, {})


# -- experts ----------------------------------------------------------------------------------------


def test_expert_label_finalises():
    decision = evaluate(make_item(binary(0.5), [("dog", 1), ("cat", 9, "expert")]), DEFAULT_POLICY, {})
    assert (decision.outcome, decision.final_label, decision.final_source) == (Outcome.ACCEPT, "cat", "expert")
    assert decision.confidence == decision.posterior["cat"]


def test_expert_label_finalises_even_when_triggers_would_fire():
    policy = PolicyConfig(triggers=(Trigger("margin", Comparison.LT, 0.5, "low_margin"),))
    decision = evaluate(make_item(binary(0.5), [("dog", 9, "expert")]), policy, {})
    assert (decision.outcome, decision.final_label) == (Outcome.ACCEPT, "dog")


CONSENSUS_DOG = [("dog", 1), ("dog", 2), ("dog", 3)]


@pytest.mark.parametrize(
    "expert_label, policy_fields, escalates",
    [
        ("cat", {}, True),  # contradicts a crowd posterior well above 0.90
        ("dog", {}, False),  # agrees
        ("cat", {"second_expert_on_conflict": False}, False),
        ("cat", {"second_expert_min_consensus": 1.0}, False),  # consensus not strong enough
    ],
)
def test_second_expert_on_conflict(expert_label, policy_fields, escalates):
    policy = dataclasses.replace(DEFAULT_POLICY, **policy_fields)
    item = make_item(binary(0.5), [*CONSENSUS_DOG, (expert_label, 9, "expert")])
    decision = evaluate(item, policy, reliable(1, 2, 3))
    if escalates:
        assert decision.outcome == Outcome.EXPERT
        assert decision.labels_requested == 1
        assert decision.reasons[0].code == "expert_contradicts_consensus"
        assert "'cat' contradicts crowd consensus 'dog'" in decision.reasons[0].evidence
    else:
        assert (decision.outcome, decision.final_label, decision.final_source) == (
            Outcome.ACCEPT,
            expert_label,
            "expert",
        )


def test_second_expert_rule_needs_crowd_labels():
    decision = evaluate(make_item({"dog": 0.99, "cat": 0.01}, [("cat", 9, "expert")]), DEFAULT_POLICY, {})
    assert (decision.outcome, decision.final_label) == (Outcome.ACCEPT, "cat")


def test_disagreeing_experts_are_weighed_by_reliability():
    experts = {**reliable(8, accuracy=0.95), **reliable(9, accuracy=0.6)}
    labels = [*CONSENSUS_DOG, ("cat", 8, "expert"), ("dog", 9, "expert")]
    decision = evaluate(make_item(binary(0.5), labels), DEFAULT_POLICY, {**reliable(1, 2, 3, accuracy=0.4), **experts})
    # P(label | truth): expert 8 .95 right / .025 wrong, expert 9 .6 / .2, crowd .4 / .3; fox's prior is ~0.
    cat, dog = 0.95 * 0.2 * 0.3**3, 0.025 * 0.6 * 0.4**3
    assert (decision.outcome, decision.final_label, decision.final_source) == (Outcome.ACCEPT, "cat", "expert")
    assert decision.reasons[0].code == "experts_disagree"
    assert decision.confidence == pytest.approx(cat / (cat + dog), rel=1e-4)


def test_disagreeing_experts_final_label_is_one_an_expert_gave():
    labels = [("fox", n) for n in range(1, 8)] + [("cat", 8, "expert"), ("dog", 9, "reviewer")]
    decision = evaluate(make_item(None, labels), DEFAULT_POLICY, reliable(*range(1, 8), accuracy=0.99))
    assert decision.posterior["fox"] > 0.5
    assert decision.final_label in {"cat", "dog"}


# -- determinism, signals, digest -------------------------------------------------------------------

BUSY_POLICY = PolicyConfig(
    triggers=(Trigger("consensus_gap", Comparison.LT, 0.1, "split"),),
    feature_rules=(FeatureRule(field="data.text", operator="contains", value="urgent", reason_code="urgent"),),
    metadata_conflict_field="source_tag",
)


def busy_item():
    return make_item(
        predictions=(
            PredictionInput(id=1, model_version="v1", probabilities={"cat": 0.2, "dog": 0.7, "fox": 0.1}),
            PredictionInput(id=2, model_version="v2", probabilities={"cat": 0.5, "dog": 0.3, "fox": 0.2}),
        ),
        labels=[("cat", 1), ("dog", 2), ("cat", 3)],
        metadata={"source_tag": "cat", "b": 1, "a": [1, 2]},
        data={"text": "routine", "n": 2.5},
    )


def test_evaluate_is_deterministic_and_reports_every_signal():
    reliabilities = reliable(1, 2)
    first = evaluate(busy_item(), BUSY_POLICY, reliabilities)
    second = evaluate(busy_item(), BUSY_POLICY, dict(reversed(list(reliabilities.items()))))
    assert first == second
    assert first.to_dict() == second.to_dict()
    assert set(first.signals) == set(SIGNAL_NAMES)
    assert sum(first.posterior.values()) == pytest.approx(1.0)


def test_digest_is_stable_across_equal_inputs():
    reliabilities = reliable(1, 2)
    base = inputs_digest(busy_item(), BUSY_POLICY, reliabilities)
    reordered = dataclasses.replace(busy_item(), metadata={"a": [1, 2], "b": 1, "source_tag": "cat"})
    assert inputs_digest(reordered, BUSY_POLICY, dict(reversed(list(reliabilities.items())))) == base
    assert len(base) == 64 and int(base, 16) >= 0
    # An annotator who did not label this item cannot change its decision, nor its digest.
    assert inputs_digest(busy_item(), BUSY_POLICY, {**reliabilities, **reliable(99)}) == base


def test_the_digest_of_stored_inputs_is_the_digest_of_the_inputs():
    """Routing stores inputs_to_dict and digests that document (stored_inputs_digest) instead of building
    the item's and reliabilities' dicts twice: the same sha256 of the canonical decision inputs."""
    reliabilities = {**reliable(1, 2), **reliable(99)}
    for item in (busy_item(), make_item(binary(0.5)), make_item(binary(0.9), [("cat", 1)])):
        stored = inputs_to_dict(item, reliabilities)
        document = canonical_json(decision_inputs(item, BUSY_POLICY, reliabilities))
        expected = hashlib.sha256(document.encode()).hexdigest()
        assert stored_inputs_digest(stored, BUSY_POLICY) == inputs_digest(item, BUSY_POLICY, reliabilities) == expected


@pytest.mark.parametrize(
    "change",
    [
        lambda item, policy, rel: (dataclasses.replace(item, annotations=item.annotations[:-1]), policy, rel),
        lambda item, policy, rel: (dataclasses.replace(item, metadata={**item.metadata, "b": 2}), policy, rel),
        lambda item, policy, rel: (dataclasses.replace(item, data={**item.data, "n": 2.5000001}), policy, rel),
        lambda item, policy, rel: (dataclasses.replace(item, language="en"), policy, rel),
        lambda item, policy, rel: (item, dataclasses.replace(policy, consensus_min_agreement=0.67), rel),
        lambda item, policy, rel: (item, dataclasses.replace(policy, triggers=()), rel),
        lambda item, policy, rel: (item, policy, {**rel, **reliable(3)}),  # annotator 3 gains a history
        lambda item, policy, rel: (item, policy, {1: dataclasses.replace(rel[1], n_observations=51), 2: rel[2]}),
        lambda item, policy, rel: (
            dataclasses.replace(
                item,
                predictions=(
                    item.predictions[0],
                    PredictionInput(id=2, model_version="v2", probabilities={"cat": 0.5, "dog": 0.2, "fox": 0.3}),
                ),
            ),
            policy,
            rel,
        ),
    ],
)
def test_digest_changes_with_any_input(change):
    reliabilities = reliable(1, 2)
    base = inputs_digest(busy_item(), BUSY_POLICY, reliabilities)
    assert inputs_digest(*change(busy_item(), BUSY_POLICY, reliabilities)) != base


def test_stored_inputs_reproduce_the_decision_and_digest():
    item, reliabilities = busy_item(), reliable(1, 2)
    restored_item = ItemInput.from_dict(item.to_dict())
    restored_policy = PolicyConfig.from_dict(BUSY_POLICY.to_dict())
    restored_rel = {a: AnnotatorReliability.from_dict(r.to_dict()) for a, r in reliabilities.items()}
    assert evaluate(restored_item, restored_policy, restored_rel) == evaluate(item, BUSY_POLICY, reliabilities)
    assert inputs_digest(restored_item, restored_policy, restored_rel) == inputs_digest(
        item, BUSY_POLICY, reliabilities
    )


# -- policy validation ------------------------------------------------------------------------------


def test_default_policy_is_valid():
    assert policy_errors(DEFAULT_POLICY) == []


@pytest.mark.parametrize(
    "fields, fragment",
    [
        (
            {"auto_accept_min_top_probability": 1.5},
            "auto_accept_min_top_probability is 1.50; it must be in [0.00, 1.00]",
        ),
        ({"consensus_min_agreement": -0.1}, "consensus_min_agreement"),
        ({"crowd_overlap": 0}, "crowd_overlap must be a whole number of at least 1"),
        ({"crowd_overlap": 2.5}, "crowd_overlap must be a whole number"),
        ({"crowd_overlap": 4, "max_crowd_labels": 3}, "max_crowd_labels (3) must be at least crowd_overlap (4)"),
        ({"model_prior_weight": -1.0}, "model_prior_weight"),
        ({"sla_hours": 0.0}, "sla_hours"),
        ({"expert_cost": float("nan")}, "expert_cost must be a number"),
        ({"crowd_prior_accuracy": 1.0}, "crowd_prior_accuracy"),
        ({"expert_prior_accuracy": 0.0}, "expert_prior_accuracy"),
        ({"second_expert_on_conflict": "yes"}, "second_expert_on_conflict"),
        ({"metadata_conflict_field": "a..b"}, "metadata_conflict_field"),
        ({"triggers": (Trigger("confidence", Comparison.LT, 0.5, "x"),)}, "trigger 1 (x): unknown signal 'confidence'"),
        ({"triggers": (Trigger("margin", "<<", 0.5, "x"),)}, "unknown comparison '<<'"),
        ({"triggers": (Trigger("margin", Comparison.LT, 0.5, "Low Margin"),)}, "reason_code"),
        (
            {"feature_rules": (FeatureRule(field="data.text", operator="matches", value="(", reason_code="r"),)},
            "feature rule 1 (data.text): invalid regular expression",
        ),
    ],
)
def test_policy_errors_name_the_field(fields, fragment):
    errors = policy_errors(dataclasses.replace(DEFAULT_POLICY, **fields))
    assert any(fragment in e for e in errors), errors
