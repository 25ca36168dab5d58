"""Signals: each formula on hand-made cases, and compute_signals on whole items."""

import math

import pytest

from routing.engine.signals import (
    SIGNAL_NAMES,
    agreement,
    compute_signals,
    consensus_gap,
    margin,
    metadata_conflict_value,
    model_disagreement,
    model_tv_distance,
    normalised_entropy,
    probability_vector,
    top_index,
    top_probability,
)
from routing.engine.types import AnnotationInput, FeatureRule, ItemInput, PolicyConfig, PredictionInput

CLASSES = ("cat", "dog", "fox")


def prediction(probabilities, id_=1, version="v1"):
    return PredictionInput(id=id_, model_version=version, probabilities=probabilities)


def crowd(label, annotator_id, id_=None, role="crowd"):
    return AnnotationInput(id=id_ or annotator_id, annotator_id=annotator_id, label=label, role=role)


@pytest.mark.parametrize(
    "probs, top, gap",
    [
        ([0.7, 0.2, 0.1], 0.7, 0.5),
        ([0.4, 0.4, 0.2], 0.4, 0.0),
        ([1.0], 1.0, 1.0),
        ([0.1, 0.3, 0.6], 0.6, 0.3),
    ],
)
def test_top_probability_and_margin(probs, top, gap):
    assert top_probability(probs) == top
    assert margin(probs) == pytest.approx(gap)


@pytest.mark.parametrize(
    "probs, entropy",
    [
        ([1.0, 0.0, 0.0], 0.0),
        ([1 / 3, 1 / 3, 1 / 3], 1.0),
        ([0.5, 0.5], 1.0),
        ([0.5, 0.5, 0.0], math.log(2) / math.log(3)),
        ([0.9, 0.1], -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)),
        ([1.0], 0.0),
    ],
)
def test_normalised_entropy(probs, entropy):
    assert normalised_entropy(probs) == pytest.approx(entropy)


def test_top_index_breaks_ties_by_class_order():
    assert top_index([0.4, 0.4, 0.2]) == 0
    assert top_index([0.2, 0.4, 0.4]) == 1


@pytest.mark.parametrize(
    "tops, expected",
    [
        (["cat"], None),
        (["cat", "cat"], 0.0),
        (["dog", "cat"], 1.0),
        (["cat", "dog", "cat"], 0.5),
        (["dog", "fox", "dog", "cat"], 1.0),
    ],
)
def test_model_disagreement(tops, expected):
    assert model_disagreement(tops) == expected


def test_model_tv_distance():
    assert model_tv_distance([[0.9, 0.1]]) is None
    assert model_tv_distance([[0.9, 0.1], [0.6, 0.4]]) == pytest.approx(0.3)
    # Mean over the earlier versions: 0.3 and 0.0.
    assert model_tv_distance([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4]]) == pytest.approx(0.15)


@pytest.mark.parametrize(
    "labels, agree, gap",
    [
        ([], None, None),
        (["a"], 1.0, 1.0),
        (["a", "a", "b"], 2 / 3, 1 / 3),
        (["a", "b"], 0.5, 0.0),
        (["a", "b", "c", "c"], 0.5, 0.25),
        (["a", "a", "a", "b", "c"], 0.6, 0.4),
    ],
)
def test_agreement_and_consensus_gap(labels, agree, gap):
    assert agreement(labels) == (None if agree is None else pytest.approx(agree))
    assert consensus_gap(labels) == (None if gap is None else pytest.approx(gap))


@pytest.mark.parametrize(
    "metadata, field, predicted, expected",
    [
        ({"source_tag": "dog"}, "source_tag", "cat", 1.0),
        ({"source_tag": "dog"}, "metadata.source_tag", "cat", 1.0),
        ({"source_tag": "cat"}, "source_tag", "cat", 0.0),
        ({"source_tag": "horse"}, "source_tag", "cat", 0.0),  # not a class name
        ({"source_tag": 3}, "source_tag", "cat", 0.0),
        ({}, "source_tag", "cat", 0.0),
        ({"tags": {"animal": "fox"}}, "tags.animal", "cat", 1.0),
        ({"source_tag": "dog"}, "", "cat", 0.0),  # no field configured
        ({"source_tag": "dog"}, "source_tag", None, None),  # nothing predicted to contradict
    ],
)
def test_metadata_conflict_value(metadata, field, predicted, expected):
    assert metadata_conflict_value(metadata, field, CLASSES, predicted) == expected


def test_probability_vector_orders_fills_and_normalises():
    assert probability_vector(prediction({"fox": 1.0, "cat": 3.0}), CLASSES) == (0.75, 0.0, 0.25)


def test_compute_signals_uses_the_latest_prediction():
    item = ItemInput(
        item_id=1,
        classes=CLASSES,
        predictions=(
            prediction({"dog": 0.9, "cat": 0.1}, 1, "v1"),
            prediction({"cat": 0.6, "dog": 0.3, "fox": 0.1}, 2, "v2"),
        ),
    )
    s = compute_signals(item, PolicyConfig(), {})
    assert s["top_probability"] == 0.6
    assert s["margin"] == 0.3
    assert s["model_disagreement"] == 1.0
    assert s["model_tv_distance"] == pytest.approx(0.6)  # |0.6-0.1| + |0.3-0.9| + |0.1-0| = 1.2, halved
    assert s["annotation_count"] == 0 and s["agreement"] is None and s["consensus_gap"] is None
    # No annotations: the posterior is the model prior itself (weight 1).
    assert s["posterior_confidence"] == 0.6


def test_compute_signals_rounds_so_thresholds_mean_what_they_say():
    item = ItemInput(item_id=1, classes=("a", "b"), predictions=(prediction({"a": 0.6, "b": 0.4}),))
    assert 0.6 - 0.4 != 0.2  # binary floating point
    assert compute_signals(item, PolicyConfig(), {})["margin"] == 0.2


def test_compute_signals_without_prediction_or_annotations():
    s = compute_signals(ItemInput(item_id=1, classes=CLASSES), PolicyConfig(metadata_conflict_field="tag"), {})
    assert set(s) == set(SIGNAL_NAMES)
    for name in (
        "top_probability",
        "margin",
        "entropy",
        "model_disagreement",
        "posterior_confidence",
        "metadata_conflict",
    ):
        assert s[name] is None, name
    assert s["annotation_count"] == 0 and s["distinct_labels"] == 0 and s["feature_rules_fired"] == 0


def test_compute_signals_counts_roles_and_labels():
    item = ItemInput(
        item_id=1,
        classes=CLASSES,
        annotations=(
            crowd("cat", 1),
            crowd("cat", 2),
            crowd("dog", 3),
            crowd("cat", 4, role="expert"),
            crowd("fox", 5, role="reviewer"),
        ),
    )
    s = compute_signals(item, PolicyConfig(model_prior_weight=0.0), {})
    assert (s["annotation_count"], s["crowd_count"], s["expert_count"]) == (5, 3, 2)
    assert s["agreement"] == 0.6 and s["distinct_labels"] == 3 and s["consensus_gap"] == 0.4
    # Priors 0.7 crowd / 0.9 expert, no model:
    # cat ∝ .7·.7·.15·.9·.05, dog ∝ .15·.15·.7·.05·.05, fox ∝ .15·.15·.15·.05·.9
    cat, dog, fox = 0.7 * 0.7 * 0.15 * 0.9 * 0.05, 0.15 * 0.15 * 0.7 * 0.05 * 0.05, 0.15 * 0.15 * 0.15 * 0.05 * 0.9
    assert s["posterior_confidence"] == pytest.approx(cat / (cat + dog + fox))


def test_compute_signals_metadata_conflict_and_rules():
    item = ItemInput(
        item_id=1,
        classes=CLASSES,
        predictions=(prediction({"cat": 0.8, "dog": 0.2}),),
        metadata={"source_tag": "dog"},
        data={"text": "x" * 10},
    )
    rules = (
        FeatureRule(field="data.text", operator="len_gt", value=5, reason_code="long"),
        FeatureRule(field="data.text", operator="len_gt", value=50, reason_code="very_long"),
        FeatureRule(field="metadata.source_tag", operator="present", value=None, reason_code="tagged", action="crowd"),
    )
    s = compute_signals(item, PolicyConfig(metadata_conflict_field="source_tag", feature_rules=rules), {})
    assert s["metadata_conflict"] == 1.0
    assert s["feature_rules_fired"] == 2


@pytest.mark.parametrize(
    "item, fragment",
    [
        (ItemInput(item_id=3, classes=()), "no classes"),
        (ItemInput(item_id=3, classes=("a", "a")), "duplicate"),
        (ItemInput(item_id=3, classes=("a",), annotations=(crowd("b", 1, id_=9),)), "annotation 9: label 'b'"),
        (
            ItemInput(item_id=3, classes=("a",), predictions=(prediction({"z": 1.0}, 4),)),
            "prediction 4: unknown classes",
        ),
        (ItemInput(item_id=3, classes=("a",), predictions=(prediction({"a": -1.0}, 4),)), "finite numbers"),
        (ItemInput(item_id=3, classes=("a", "b"), predictions=(prediction({"a": 0.0}, 4),)), "sum to 0"),
    ],
)
def test_inconsistent_items_are_rejected_with_a_clear_error(item, fragment):
    with pytest.raises(ValueError, match=f"item 3.*{fragment}"):
        compute_signals(item, PolicyConfig(), {})
