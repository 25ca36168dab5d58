"""Aggregation: hand-computed posteriors, priors for unknown annotators, smoothing, online and batch learning."""

import numpy as np
import pytest

from routing.engine.aggregation import (
    CONFUSION_FLOOR,
    default_confusion,
    item_posterior,
    posterior,
    soft_target_weight,
)
from routing.engine.reliability import OnlineReliability, dawid_skene, majority_posteriors
from routing.engine.types import AnnotationInput, AnnotatorReliability, ItemInput, PolicyConfig

A1 = np.array([[0.8, 0.2], [0.3, 0.7]])
A2 = np.array([[0.9, 0.1], [0.4, 0.6]])


@pytest.mark.parametrize(
    "weight, expected",
    [
        # class 0: 0.6 * 0.8 * 0.1 = 0.048; class 1: 0.4 * 0.3 * 0.6 = 0.072
        (1.0, [0.048 / 0.12, 0.072 / 0.12]),
        # prior squared: 0.36 * 0.08 = 0.0288 against 0.16 * 0.18 = 0.0288
        (2.0, [0.5, 0.5]),
        # weight 0 ignores the model: 0.08 against 0.18
        (0.0, [0.08 / 0.26, 0.18 / 0.26]),
    ],
)
def test_posterior_by_hand(weight, expected):
    result = posterior([0.6, 0.4], [0, 1], [A1, A2], model_weight=weight)
    assert result == pytest.approx(expected, abs=1e-12)


def test_posterior_without_model_or_labels_is_uniform():
    assert posterior(None, [], [], k=4) == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="needs k"):
        posterior(None, [], [])


def test_posterior_accepts_nested_tuples_like_stored_reliabilities():
    stored = tuple(tuple(row) for row in A1.tolist())
    assert posterior(None, [1], [stored]) == pytest.approx([0.2 / 0.9, 0.7 / 0.9])


def test_model_probability_of_zero_can_be_outvoted():
    # The floor (1e-6) is a prior odds of a million to one: four labels at 99:1 beat it, three do not.
    assert posterior([1.0, 0.0], [1] * 4, [default_confusion(2, 0.99)] * 4)[1] > 0.5
    assert posterior([1.0, 0.0], [1] * 3, [default_confusion(2, 0.99)] * 3)[1] < 0.5


@pytest.mark.parametrize("k, accuracy", [(2, 0.7), (3, 0.9), (5, 0.6)])
def test_default_confusion_is_symmetric_with_rows_summing_to_one(k, accuracy):
    matrix = default_confusion(k, accuracy)
    assert matrix.shape == (k, k)
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert np.allclose(np.diag(matrix), accuracy)
    off = matrix[~np.eye(k, dtype=bool)]
    assert np.allclose(off, (1 - accuracy) / (k - 1))


@pytest.mark.parametrize("accuracy", [0.0, 1.0, 1.2])
def test_default_confusion_rejects_degenerate_accuracy(accuracy):
    with pytest.raises(ValueError, match="strictly between"):
        default_confusion(3, accuracy)


def item_with(annotations, probs=None, classes=("a", "b", "c")):
    from routing.engine.types import PredictionInput

    predictions = (PredictionInput(id=1, model_version="v1", probabilities=probs),) if probs else ()
    return ItemInput(item_id=1, classes=classes, predictions=predictions, annotations=tuple(annotations))


def test_unknown_annotator_uses_role_prior():
    policy = PolicyConfig(crowd_prior_accuracy=0.7, expert_prior_accuracy=0.9, model_prior_weight=0.0)
    crowd = AnnotationInput(id=1, annotator_id=7, label="a", role="crowd")
    expert = AnnotationInput(id=2, annotator_id=8, label="a", role="expert")
    reviewer = AnnotationInput(id=3, annotator_id=9, label="a", role="reviewer")
    item = item_with([crowd])
    assert item_posterior(item, None, [crowd], policy, {}) == pytest.approx([0.7, 0.15, 0.15])
    assert item_posterior(item, None, [expert], policy, {}) == pytest.approx([0.9, 0.05, 0.05])
    assert item_posterior(item, None, [reviewer], policy, {}) == pytest.approx([0.9, 0.05, 0.05])


def test_known_annotator_uses_stored_confusion():
    policy = PolicyConfig(model_prior_weight=0.0)
    matrix = ((0.5, 0.25, 0.25), (0.1, 0.8, 0.1), (0.2, 0.2, 0.6))
    annotation = AnnotationInput(id=1, annotator_id=7, label="b", role="crowd")
    known = {7: AnnotatorReliability(annotator_id=7, confusion=matrix, n_observations=30)}
    result = item_posterior(item_with([annotation]), None, [annotation], policy, known)
    assert result == pytest.approx([0.25 / 1.25, 0.8 / 1.25, 0.2 / 1.25])


def test_confusion_of_wrong_shape_is_a_clear_error():
    annotation = AnnotationInput(id=1, annotator_id=7, label="b", role="crowd")
    known = {7: AnnotatorReliability(annotator_id=7, confusion=((0.9, 0.1), (0.1, 0.9)))}
    with pytest.raises(ValueError, match="annotator 7"):
        item_posterior(item_with([annotation]), None, [annotation], PolicyConfig(), known)


def test_smoothing_keeps_probabilities_away_from_zero():
    learner = OnlineReliability(3, prior_strength=2.0)
    for _ in range(500):
        learner.observe_gold(1, true_index=0, given_index=0)
    matrix = learner.confusion(1)
    assert matrix.min() > 0
    assert np.allclose(matrix.sum(axis=1), 1.0)
    assert matrix[0, 0] > 0.99
    # A perfect-looking annotator still cannot make a class impossible on its own.
    post = posterior(None, [0], [matrix])
    assert post.min() > 0
    assert posterior(None, [0], [np.eye(3)]).min() >= CONFUSION_FLOOR / 2


def test_gold_counts_update_the_confusion_with_dirichlet_smoothing():
    learner = OnlineReliability(2, crowd_accuracy=0.7, prior_strength=2.0)
    learner.observe_gold(5, true_index=0, given_index=1)
    # Row 0 prior counts [1.4, 0.6] plus the observation [0, 1] -> [1.4, 1.6] / 3.
    assert learner.confusion(5)[0] == pytest.approx([1.4 / 3, 1.6 / 3])
    assert learner.confusion(5)[1] == pytest.approx([0.3, 0.7])  # row 1 untouched
    assert learner.reliability(5).n_observations == pytest.approx(1.0)


def test_unknown_annotator_in_learner_reports_the_role_prior():
    learner = OnlineReliability(2, crowd_accuracy=0.7, expert_accuracy=0.9)
    assert learner.confusion(1) == pytest.approx(default_confusion(2, 0.7))
    assert learner.confusion(1, role="expert") == pytest.approx(default_confusion(2, 0.9))
    assert learner.reliabilities() == {}


def test_soft_target_excludes_the_annotators_own_vote():
    learner = OnlineReliability(2, crowd_accuracy=0.7, prior_strength=2.0)
    learner.observe_item("i1", [(1, "crowd", 0), (2, "crowd", 0)])
    # Annotator 1's target is annotator 2's vote alone: [0.7, 0.3], weight (0.7 - 0.5) / 0.5 = 0.4,
    # so column 0 gains [0.28, 0.12] on top of prior counts [[1.4, 0.6], [0.6, 1.4]].
    expected = np.array([[1.68 / 2.28, 0.6 / 2.28], [0.72 / 2.12, 1.4 / 2.12]])
    assert learner.confusion(1) == pytest.approx(expected)
    assert learner.confusion(2) == pytest.approx(expected)


def test_lone_vote_with_flat_prior_teaches_nothing():
    learner = OnlineReliability(2)
    for item in range(50):
        learner.observe_item(item, [(1, "crowd", 0)])
    # Without leave-one-out the annotator would have confirmed itself 50 times.
    assert learner.confusion(1) == pytest.approx(default_confusion(2, 0.7))


def test_observing_an_item_again_replaces_its_contribution():
    once, twice = OnlineReliability(3), OnlineReliability(3)
    votes = [(1, "crowd", 0), (2, "crowd", 0), (3, "expert", 1)]
    once.observe_item("x", votes, model_probs=[0.5, 0.3, 0.2])
    twice.observe_item("x", votes[:2], model_probs=[0.5, 0.3, 0.2])
    twice.observe_item("x", votes, model_probs=[0.5, 0.3, 0.2])
    for annotator in (1, 2, 3):
        assert twice.confusion(annotator) == pytest.approx(once.confusion(annotator))


def test_gold_item_counts_every_vote_against_the_truth():
    learner = OnlineReliability(2, prior_strength=2.0)
    learner.observe_item("g", [(1, "crowd", 1), (2, "crowd", 0)], truth=0)
    assert learner.confusion(1)[0] == pytest.approx([1.4 / 3, 1.6 / 3])
    assert learner.confusion(2)[0] == pytest.approx([2.4 / 3, 0.6 / 3])


@pytest.mark.parametrize(
    "target, weight", [([0.5, 0.5], 0.0), ([1.0, 0.0], 1.0), ([0.75, 0.25], 0.5), ([0.4, 0.3, 0.3], 0.1)]
)
def test_soft_target_weight(target, weight):
    assert soft_target_weight(target) == pytest.approx(weight)


def synthetic(seed, n_items=400, accuracies=(0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55), k=3, per_item=5):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, size=n_items)
    labels = []
    for item in range(n_items):
        for annotator in rng.choice(len(accuracies), size=per_item, replace=False):
            if rng.random() < accuracies[annotator]:
                given = truth[item]
            else:
                given = rng.choice([c for c in range(k) if c != truth[item]])
            labels.append((item, int(annotator), int(given)))
    labels = np.array(labels)
    # What each annotator actually achieved in this sample, which is what an estimator can recover.
    correct = labels[:, 2] == truth[labels[:, 0]]
    achieved = np.bincount(labels[:, 1], weights=correct) / np.bincount(labels[:, 1])
    return labels, truth, achieved


def test_dawid_skene_recovers_annotator_accuracies():
    labels, truth, accuracies = synthetic(seed=7)
    post, confusions = dawid_skene(3, labels, n_items=len(truth), n_annotators=len(accuracies))
    estimated = np.array([np.trace(c) / 3 for c in confusions])
    assert np.abs(estimated - accuracies).max() < 0.03
    assert np.allclose(post.sum(axis=1), 1.0)
    ds_accuracy = np.mean(post.argmax(axis=1) == truth)
    mv_accuracy = np.mean(majority_posteriors(labels[:, 0], labels[:, 2], len(truth), 3).argmax(axis=1) == truth)
    assert ds_accuracy > mv_accuracy


def test_online_learner_approaches_the_same_accuracies():
    labels, _, accuracies = synthetic(seed=11)
    learner = OnlineReliability(3)
    votes = {}
    for item, annotator, given in labels.tolist():
        votes.setdefault(item, []).append((annotator, "crowd", given))
        learner.observe_item(item, votes[item])
    estimated = np.array([np.trace(learner.confusion(a)) / 3 for a in range(len(accuracies))])
    assert np.abs(estimated - accuracies).max() < 0.1
    # The best annotator is told apart from the worst.
    assert estimated.argmax() == 0 and estimated.argmin() == len(accuracies) - 1


def test_dawid_skene_gold_items_are_clamped_and_pin_the_annotators():
    # Two annotators who always agree could be both right or both wrong; gold says which.
    labels = [(i, a, 1) for i in range(20) for a in (0, 1)]
    post, confusions = dawid_skene(["x", "y"], labels, n_items=20, n_annotators=2, gold={i: 0 for i in range(5)})
    assert post[:5, 0] == pytest.approx(1.0)
    assert confusions[0][0, 1] > 0.9  # they say "y" when the truth is "x"


def test_dawid_skene_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="annotator index 3 at row 1"):
        dawid_skene(2, [(0, 0, 1), (0, 3, 0)], n_items=1, n_annotators=2)


def test_dawid_skene_item_without_labels_gets_the_prior():
    post, _ = dawid_skene(
        2, [(0, 0, 1), (0, 1, 1)], n_items=2, n_annotators=2, item_priors=np.array([[0.5, 0.5], [0.8, 0.2]])
    )
    assert post[1] == pytest.approx([0.8, 0.2])
