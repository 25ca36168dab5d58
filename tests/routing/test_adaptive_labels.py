"""Labels that hold on unseen data: shrinkage of reliabilities learned from little, the class prior, the
posterior stopping rule at its boundary, the per-item budget, the consensus recheck, and old policy
versions that keep their meaning."""

import dataclasses

import numpy as np
import pytest

from pilot.readers import History, PilotData
from pilot.simulation import prepare, replay, run_pilot
from routing.engine.policy import DEFAULT_POLICY, evaluate, inputs_digest
from routing.engine.reliability import RefitReliability
from routing.engine.types import AnnotationInput, AnnotatorReliability, ItemInput, Outcome, PolicyConfig

CLASSES = ("a", "b")


def crowd_history(accuracies, n_items, per_item, seed, *, spammers=(), adversaries=()):
    """A binary history: per_item distinct workers per item; spammers answer "a" or "b" at random whatever
    the truth, adversaries give the wrong class 90 % of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(2, size=n_items)
    workers = list(range(len(accuracies)))
    judgments, gold = [], {}
    for n in range(n_items):
        js = []
        for w in rng.permutation(workers)[:per_item]:
            if w in spammers:
                given = int(rng.integers(2))
            elif w in adversaries:
                given = int(truth[n]) if rng.random() < 0.1 else 1 - int(truth[n])
            else:
                given = int(truth[n]) if rng.random() < accuracies[w] else 1 - int(truth[n])
            js.append((f"w{w}", CLASSES[given]))
        judgments.append(tuple(js))
        gold[f"i{n}"] = CLASSES[int(truth[n])]
    history = History(classes=CLASSES, items=tuple(gold), judgments=tuple(judgments))
    return PilotData(history=history, gold=gold)


# --- shrinkage -------------------------------------------------------------------------------------------


def learner_on(rows, **options):
    learner = RefitReliability(2, **options)
    for item, annotator, given in rows:
        learner.add_label(item, annotator, given)
    return learner, learner.refit()


def typical_rows(n_items=200, seed=3):
    """Five good workers (90 %) labeling every item, truth alternating."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(n_items):
        truth = item % 2
        for annotator in range(1, 6):
            rows.append((item, annotator, truth if rng.random() < 0.9 else 1 - truth))
    return rows


def accuracy(reliability):
    return float(np.trace(np.array(reliability.confusion))) / 2


def test_a_new_annotator_reads_like_a_typical_colleague_not_like_the_fixed_prior():
    rows = typical_rows()
    rows.append((0, 99, 0))  # one label, agreeing with the crowd on item 0 (truth 0)
    _, found = learner_on(rows)
    newcomer = accuracy(found[99])
    # The role prior alone says 0.70; five 90 % colleagues pull a one-label newcomer well above it ...
    assert newcomer > 0.8
    # ... but not as high as the colleagues, whose estimates rest on 200 labels each.
    assert newcomer < min(accuracy(found[a]) for a in range(1, 6))


def test_a_spammer_is_recognised_and_its_labels_carry_no_weight():
    rows = typical_rows()
    rng = np.random.default_rng(5)
    rows += [(item, 50, int(rng.integers(2))) for item in range(200)]
    _, found = learner_on(rows)
    confusion = np.array(found[50].confusion)
    # Uniform answers: both rows alike, so a label from it hardly moves a posterior.
    assert abs(confusion[0, 0] - confusion[1, 0]) < 0.15
    item = ItemInput(1, CLASSES, annotations=(AnnotationInput(1, 50, "a", "crowd"),))
    post = evaluate(item, DEFAULT_POLICY, {50: found[50]}).posterior
    assert 0.4 < post["a"] < 0.6


def test_an_adversarial_annotator_is_informative_the_other_way_round():
    rows = typical_rows()
    rows += [(item, 60, 1 - item % 2) for item in range(200)]  # always the wrong class
    _, found = learner_on(rows)
    assert accuracy(found[60]) < 0.1
    item = ItemInput(1, CLASSES, annotations=(AnnotationInput(1, 60, "a", "crowd"),))
    decision = evaluate(item, DEFAULT_POLICY, {60: found[60]})
    # Its "a" means "b"; the default policy accepts that without requiring the crowd's majority to agree.
    assert decision.posterior["b"] > 0.9
    assert (decision.outcome, decision.final_label) == (Outcome.ACCEPT, "b")
    legacy = dataclasses.replace(DEFAULT_POLICY, consensus_requires_majority=True)
    assert evaluate(item, legacy, {60: found[60]}).outcome == Outcome.CROWD


def test_class_prior_is_the_prevalence_of_labeled_items():
    rows = []
    for item in range(100):
        truth = 0 if item < 80 else 1
        rows += [(item, a, truth) for a in (1, 2, 3)]
    learner, _ = learner_on(rows)
    prior = learner.class_prior()
    assert prior == pytest.approx((81 / 102, 21 / 102), abs=0.01)
    assert RefitReliability(2).class_prior() == ()


# --- the class prior in the engine -------------------------------------------------------------------------


def one_label_item(label="b", class_prior=(0.9, 0.1)):
    return ItemInput(7, CLASSES, annotations=(AnnotationInput(1, 3, label, "crowd"),), class_prior=class_prior)


def test_the_class_prior_weighs_only_when_the_policy_says_so():
    reliability = {3: AnnotatorReliability(3, ((0.8, 0.2), (0.2, 0.8)), 50.0)}
    weighed = evaluate(one_label_item(), DEFAULT_POLICY, reliability).posterior
    flat = evaluate(one_label_item(), dataclasses.replace(DEFAULT_POLICY, class_prior_weight=0.0), reliability)
    # 0.1 * 0.8 against 0.9 * 0.2: a rare class needs more than one 80 % label.
    assert weighed["b"] == pytest.approx(0.08 / (0.08 + 0.18))
    assert flat.posterior["b"] == pytest.approx(0.8)


def test_a_model_prediction_takes_precedence_over_the_class_prior():
    from routing.engine.types import PredictionInput

    item = dataclasses.replace(one_label_item(), predictions=(PredictionInput(1, "m", {"a": 0.5, "b": 0.5}),))
    reliability = {3: AnnotatorReliability(3, ((0.8, 0.2), (0.2, 0.8)), 50.0)}
    assert evaluate(item, DEFAULT_POLICY, reliability).posterior["b"] == pytest.approx(0.8)


def test_a_class_prior_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="class_prior has 3 values for 2 classes"):
        evaluate(one_label_item(class_prior=(0.5, 0.3, 0.2)), DEFAULT_POLICY, {})


# --- the stopping rule at its boundary and the budget ------------------------------------------------------


def agreeing_item(n_labels):
    return ItemInput(
        1, CLASSES, annotations=tuple(AnnotationInput(i, i, "a", "crowd") for i in range(1, n_labels + 1))
    )


def test_stops_exactly_when_the_posterior_reaches_the_threshold():
    # Two agreeing labels of 75 % annotators under a flat prior: posterior 0.9 exactly.
    reliabilities = {i: AnnotatorReliability(i, ((0.75, 0.25), (0.25, 0.75)), 10.0) for i in (1, 2)}
    post = evaluate(agreeing_item(2), DEFAULT_POLICY, reliabilities).posterior["a"]
    assert post == pytest.approx(0.9)
    at = dataclasses.replace(DEFAULT_POLICY, consensus_min_posterior=0.9)
    above = dataclasses.replace(DEFAULT_POLICY, consensus_min_posterior=0.900001)
    assert evaluate(agreeing_item(2), at, reliabilities).outcome == Outcome.ACCEPT
    decision = evaluate(agreeing_item(2), above, reliabilities)
    assert (decision.outcome, decision.labels_requested) == (Outcome.CROWD, 1)
    assert [r.code for r in decision.reasons] == ["low_posterior"]


def test_the_per_item_maximum_escalates_instead_of_asking_again():
    unsure = {i: AnnotatorReliability(i, ((0.55, 0.45), (0.45, 0.55)), 10.0) for i in range(1, 4)}
    policy = dataclasses.replace(DEFAULT_POLICY, max_crowd_labels=3)
    assert evaluate(agreeing_item(2), policy, unsure).outcome == Outcome.CROWD
    decision = evaluate(agreeing_item(3), policy, unsure)
    assert decision.outcome == Outcome.EXPERT
    assert decision.reasons[0].code == "no_consensus"


@pytest.mark.parametrize("maximum", [2, 4, 7])
def test_the_replay_never_spends_more_than_the_per_item_maximum(maximum):
    data = crowd_history([0.6] * 12, n_items=120, per_item=10, seed=maximum)
    policy = dataclasses.replace(DEFAULT_POLICY, max_crowd_labels=maximum, consensus_min_posterior=0.999)
    result = replay(data.history, policy, seed=1)
    spent = [o.crowd_labels for o in result.outcomes.values()]
    assert max(spent) == maximum
    assert len(result.outcomes) == 120


def test_easy_items_stop_at_the_first_confident_label_and_split_ones_keep_asking():
    data = crowd_history([0.97] * 10, n_items=300, per_item=10, seed=4)
    report = run_pilot(prepare(data, seed=0), DEFAULT_POLICY)
    # Almost every item is settled by one or two labels from a reliable crowd ...
    assert report.adaptive["labels_per_item"] < 2.2
    assert report.adaptive["accuracy"] > 0.98
    hard = crowd_history([0.65] * 10, n_items=300, per_item=10, seed=4)
    # ... while a weak crowd is asked for several.
    assert run_pilot(prepare(hard, seed=0), DEFAULT_POLICY).adaptive["labels_per_item"] > 4


# --- the consensus recheck ----------------------------------------------------------------------------------


def test_recheck_reopens_items_accepted_on_estimates_later_revised():
    # Weak annotators and two adversaries: items accepted on early estimates are asked again once the
    # learner has seen who is who.
    data = crowd_history([0.7] * 10, n_items=200, per_item=10, seed=1, adversaries=(0, 1))
    without = dataclasses.replace(DEFAULT_POLICY, consensus_recheck=False)
    plain = run_pilot(prepare(data, seed=0, shuffle_judgments=True), without)
    rechecked = run_pilot(prepare(data, seed=0, shuffle_judgments=True), DEFAULT_POLICY)
    assert rechecked.adaptive["accuracy"] > plain.adaptive["accuracy"] + 0.01
    assert rechecked.adaptive["labels_per_item"] > plain.adaptive["labels_per_item"]
    evaluations = sum(o.evaluations for o in rechecked.result.outcomes.values())
    assert evaluations > sum(o.evaluations for o in plain.result.outcomes.values())


def test_the_learner_does_not_settle_on_the_mirrored_solution():
    # With a warm start every refit this history ended with every class swapped (accuracy 0.035).
    data = crowd_history([0.7] * 10, n_items=200, per_item=10, seed=2, adversaries=(0, 1))
    report = run_pilot(prepare(data, seed=0, shuffle_judgments=True), DEFAULT_POLICY)
    assert report.adaptive["accuracy"] > 0.9
    assert report.baselines["dawid_skene_all"]["accuracy"] > 0.9


# --- old versions keep their meaning --------------------------------------------------------------------------


def test_fields_at_their_legacy_value_are_not_stored_so_old_digests_stand():
    legacy = PolicyConfig()
    assert "class_prior_weight" not in legacy.to_dict()
    assert "consensus_recheck" not in legacy.to_dict()
    stored = legacy.to_dict()
    assert PolicyConfig.from_dict(stored) == legacy
    assert {"class_prior_weight", "consensus_requires_majority", "consensus_recheck"} <= set(DEFAULT_POLICY.to_dict())
    item = agreeing_item(2)
    assert "class_prior" not in item.to_dict()
    assert ItemInput.from_dict(one_label_item().to_dict()) == one_label_item()
    # The digest of an old decision is computed over exactly what it was computed over before.
    assert inputs_digest(item, legacy, {}) == inputs_digest(item, PolicyConfig.from_dict(stored), {})


# --- the project's budget -----------------------------------------------------------------------------------


def test_an_item_stops_asking_exactly_when_the_project_reaches_its_budget():
    unsure = {i: AnnotatorReliability(i, ((0.6, 0.4), (0.4, 0.6)), 10.0) for i in (1, 2)}
    policy = dataclasses.replace(DEFAULT_POLICY, target_labels_per_item=3.0)
    below = dataclasses.replace(agreeing_item(2), project_labels_per_item=2.9999)
    assert evaluate(below, policy, unsure).outcome == Outcome.CROWD
    at = dataclasses.replace(agreeing_item(2), project_labels_per_item=3.0)
    decision = evaluate(at, policy, unsure)
    assert (decision.outcome, decision.final_label, decision.final_source) == (Outcome.ACCEPT, "a", "consensus")
    assert [r.code for r in decision.reasons] == ["budget_spent", "low_posterior"]
    # Without a target the same count changes nothing, and the count is part of the inputs only when set.
    assert evaluate(at, DEFAULT_POLICY, unsure).outcome == Outcome.CROWD
    assert "project_labels_per_item" not in agreeing_item(2).to_dict()
    assert ItemInput.from_dict(at.to_dict()) == at


def test_the_budget_never_takes_an_items_first_labels():
    policy = dataclasses.replace(DEFAULT_POLICY, crowd_overlap=2, max_crowd_labels=5, target_labels_per_item=1.0)
    unsure = {1: AnnotatorReliability(1, ((0.6, 0.4), (0.4, 0.6)), 10.0)}
    spent = dataclasses.replace(agreeing_item(1), project_labels_per_item=4.0)
    assert evaluate(spent, policy, unsure).outcome == Outcome.CROWD


def test_the_replay_keeps_to_the_projects_budget_and_buys_accuracy_with_it():
    data = crowd_history([0.75] * 12, n_items=300, per_item=12, seed=1)
    free = run_pilot(prepare(data, seed=0), DEFAULT_POLICY).adaptive
    assert free["labels_per_item"] > 5  # without a budget this crowd is asked for more
    figures = []
    for target in (1.5, 2.5, 4.0):
        budgeted = dataclasses.replace(DEFAULT_POLICY, target_labels_per_item=target)
        report = run_pilot(prepare(data, seed=0), budgeted).adaptive
        # Items are served in rounds, so the mean ends within one round's labels below the target.
        assert target - 0.5 <= report["labels_per_item"] <= target + 0.01
        figures.append(report["accuracy"])
    assert figures == sorted(figures) and figures[-1] > figures[0] + 0.1
