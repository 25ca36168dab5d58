"""RefitReliability and the Dawid-Skene options it uses (hierarchical prior, groups, warm start)."""

import numpy as np
import pytest

from routing.engine.reliability import RefitReliability, dawid_skene


def crowd_labels(accuracies, n_items, per_item, seed):
    """(item, annotator, given) rows: per_item distinct annotators per item, binary classes."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(2, size=n_items)
    rows = []
    for item in range(n_items):
        for annotator in rng.permutation(len(accuracies))[:per_item]:
            right = rng.random() < accuracies[annotator]
            rows.append((item, int(annotator), int(truth[item] if right else 1 - truth[item])))
    return truth, rows


def accuracy_of(reliability):
    return float(np.trace(np.array(reliability.confusion))) / 2


def test_recovers_known_accuracies_from_two_labels_per_item():
    accuracies = [0.92, 0.9, 0.88, 0.62, 0.6, 0.6, 0.58, 0.55]
    _, rows = crowd_labels(accuracies, n_items=400, per_item=2, seed=17)
    learner = RefitReliability(2)
    for item, annotator, given in rows:
        learner.add_label(item, annotator + 100, given)
    learned = {a - 100: accuracy_of(r) for a, r in learner.refit().items()}
    for annotator, accuracy in enumerate(accuracies):
        assert learned[annotator] == pytest.approx(accuracy, abs=0.12)
    assert min(learned[a] for a in range(3)) > max(learned[a] for a in range(3, 8)) + 0.1


def test_reports_observations_and_only_annotators_seen():
    learner = RefitReliability(["x", "y"])
    assert learner.refit() == {}
    learner.add_label("i1", 7, 0)
    learner.add_label("i1", 8, 1)
    learner.add_label("i2", 7, 1)
    found = learner.refit()
    assert set(found) == {7, 8}
    assert (found[7].n_observations, found[8].n_observations) == (2.0, 1.0)
    for reliability in found.values():
        assert np.allclose(np.array(reliability.confusion).sum(axis=1), 1.0)


def test_gold_checks_judge_annotators_against_the_truth():
    learner = RefitReliability(2)
    for item in range(30):
        learner.set_truth(item, 0)
        learner.add_label(item, 1, 0)  # always right
        learner.add_label(item, 2, 1)  # always wrong: without the truth the two would be indistinguishable
    found = learner.refit()
    # Row 0 (the only true class seen): annotator 1 says 0, annotator 2 says 1.
    assert found[1].confusion[0][0] > 0.9
    assert found[2].confusion[0][1] > 0.9


def test_experts_are_pooled_apart_from_the_crowd():
    learner = RefitReliability(2, crowd_accuracy=0.7, expert_accuracy=0.95)
    truth, rows = crowd_labels([0.65] * 6, n_items=200, per_item=3, seed=2)
    for item, annotator, given in rows:
        learner.add_label(item, annotator, given)
    learner.add_label(0, 99, int(truth[0]), role="expert")  # one expert label
    found = learner.refit()
    # The lone expert reads like the expert prior, not like the mediocre crowd.
    assert accuracy_of(found[99]) > 0.8
    assert max(accuracy_of(found[a]) for a in range(6)) < 0.8


def test_refit_is_stable_under_warm_start():
    _, rows = crowd_labels([0.9, 0.8, 0.7, 0.6], n_items=150, per_item=3, seed=5)
    learner = RefitReliability(2, tol=1e-8, iterations=500)
    for item, annotator, given in rows:
        learner.add_label(item, annotator, given)
    first = learner.refit()
    again = learner.refit()
    for a in first:
        assert np.allclose(first[a].confusion, again[a].confusion, atol=1e-4)


def test_pooled_prior_pulls_a_newcomer_towards_the_typical_annotator():
    # Gold pins the truth (half 0, half 1); annotators 0-3 say 0 whatever it is. Annotator 4 gave one
    # label, on an item without gold.
    gold = {i: i % 2 for i in range(40)}
    rows = [(i, a, 0) for i in range(40) for a in range(4)] + [(40, 4, 0)]
    fixed_prior = np.tile(np.array([[0.7, 0.3], [0.3, 0.7]]), (5, 1, 1))
    _, without = dawid_skene(2, rows, 41, 5, gold=gold, prior_counts=fixed_prior)
    _, pooled = dawid_skene(2, rows, 41, 5, gold=gold, prior_counts=fixed_prior, pooled_strength=20.0)
    # Typical here means "says 0 when the truth is 1": the newcomer's row for truth 1 moves that way.
    assert without[4, 1, 0] < 0.6
    assert pooled[4, 1, 0] > 0.85
    # Annotators with many labels hardly move.
    assert np.allclose(pooled[0], without[0], atol=0.1)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="prior_strength"):
        RefitReliability(2, prior_strength=0)
    with pytest.raises(ValueError, match="pooled_strength"):
        RefitReliability(2, pooled_strength=-1)
    learner = RefitReliability(2)
    with pytest.raises(ValueError, match="class index 2"):
        learner.add_label("i", 1, 2)
    with pytest.raises(ValueError, match="class index -1"):
        learner.set_truth("i", -1)
