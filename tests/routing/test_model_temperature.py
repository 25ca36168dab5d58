"""The model's temperature: fitted from the project's evidence, applied before any signal reads a
prediction, relearned by the replay and by the live refresh alike, and the model's accepted labels looked
at again when it moves."""

import dataclasses

import numpy as np
import pytest

from labeling.models import FinalSource, Item
from pilot.readers import History, PilotData
from pilot.simulation import prepare, run_pilot
from routing import inputs, policies, reliabilities, selectors
from routing.engine.policy import DEFAULT_POLICY, evaluate
from routing.engine.temperature import MIN_ITEMS, fit_temperature, temperature_changed, tempered
from routing.engine.types import ItemInput, Outcome, PredictionInput
from tests.routing.assignment_helpers import NOW, ingest_at, person, project, row
from work import claims, submissions

CLASSES = ("a", "b", "c")


def overconfident(n, temperature, seed):
    """(model probabilities, true classes): truths drawn from calibrated probabilities, which the model
    then reports sharpened by 1/temperature (so `temperature` is what undoes it)."""
    rng = np.random.default_rng(seed)
    calibrated = rng.dirichlet([0.7, 0.7, 0.7], size=n)
    truth = np.array([rng.choice(3, p=p) for p in calibrated])
    reported = np.array([tempered(p, 1 / temperature) for p in calibrated])
    return reported, truth


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_the_fit_recovers_the_temperature_from_gold(true_temperature):
    probs, truth = overconfident(3000, true_temperature, seed=1)
    fitted = fit_temperature(probs, np.eye(3)[truth])
    assert fitted == pytest.approx(true_temperature, rel=0.12)


def test_labels_that_say_nothing_pull_nowhere_and_too_few_items_fit_nothing():
    probs, truth = overconfident(MIN_ITEMS - 1, 3.0, seed=2)
    assert fit_temperature(probs, np.eye(3)[truth]) is None
    probs, _ = overconfident(500, 3.0, seed=2)
    assert fit_temperature(probs, np.ones((500, 3))) is None


def test_a_small_change_does_not_reopen_the_models_labels():
    assert temperature_changed(None, 2.0) and temperature_changed(2.0, 2.2)
    assert not temperature_changed(2.0, 2.05) and not temperature_changed(2.0, None)
    assert not temperature_changed(None, 1.0)


def test_routing_reads_the_prediction_through_the_temperature():
    item = ItemInput(1, CLASSES, predictions=(PredictionInput(1, "m", {"a": 0.96, "b": 0.03, "c": 0.01}),))
    assert evaluate(item, DEFAULT_POLICY, {}).outcome == Outcome.ACCEPT
    softened = dataclasses.replace(item, model_temperature=3.0)
    decision = evaluate(softened, DEFAULT_POLICY, {})
    assert decision.outcome == Outcome.CROWD
    assert decision.signals["top_probability"] == pytest.approx(tempered((0.96, 0.03, 0.01), 3.0)[0])
    assert ItemInput.from_dict(softened.to_dict()) == softened and "model_temperature" not in item.to_dict()
    with pytest.raises(ValueError, match="model_temperature"):
        evaluate(dataclasses.replace(item, model_temperature=0.0), DEFAULT_POLICY, {})


def overconfident_project(seed=3, n=400):
    """A crowd of 80 % annotators (6 judgments per item) and a model right 80 % of the time that says 99 %."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(3, size=n)
    items = tuple(f"i{i}" for i in range(n))
    predictions, judgments = {}, []
    for i, t in enumerate(truth):
        top = t if rng.random() < 0.8 else (t + rng.integers(1, 3)) % 3
        predictions[items[i]] = tuple(0.99 if c == top else 0.005 for c in range(3))
        js = []
        for w in rng.permutation(12)[:6]:
            given = t if rng.random() < 0.8 else (t + rng.integers(1, 3)) % 3
            js.append((f"w{w}", CLASSES[given]))
        judgments.append(tuple(js))
    history = History(classes=CLASSES, items=items, judgments=tuple(judgments), predictions=predictions)
    return PilotData(history=history, gold={items[i]: CLASSES[t] for i, t in enumerate(truth)})


def test_the_replay_learns_the_temperature_from_gold_checks_and_stops_trusting_a_sure_model():
    data = overconfident_project()
    trusting = run_pilot(
        prepare(data, seed=0, gold_checks=0.1), dataclasses.replace(DEFAULT_POLICY, learn_model_temperature=False)
    )
    learning = run_pilot(prepare(data, seed=0, gold_checks=0.1), DEFAULT_POLICY)
    # Trusting the 99 % the model says accepts its labels, a fifth of them wrong.
    assert trusting.adaptive["auto_accept_rate"] > 0.9 and trusting.adaptive["accuracy"] < 0.85
    # The gold checks show what its 99 % is worth: the crowd is asked instead.
    assert learning.adaptive["auto_accept_rate"] < 0.5
    assert learning.adaptive["accuracy"] > trusting.adaptive["accuracy"] + 0.1


@pytest.mark.django_db
def test_the_live_refresh_learns_the_temperature_and_reopens_the_models_labels():
    proj = project(policy=dataclasses.replace(DEFAULT_POLICY, gold_check_rate=0.0))
    # 20 items the model is sure of (accepted) and 40 it says 80 % for (to the crowd).
    sure = [row(f"sure{n}", {"dog": 0.97, "cat": 0.03}) for n in range(20)]
    unsure = [row(f"unsure{n}", {"dog": 0.8, "cat": 0.2}) for n in range(40)]
    ids = ingest_at(proj, sure + unsure)
    model_labeled = Item.objects.filter(project=proj, final_source=FinalSource.MODEL).count()
    assert model_labeled == 20
    # Three annotators agree that half the "dog"s are cats: 80 % is far too sure, and so is 97 %.
    for name in ("c1", "c2", "c3"):
        annotator = person(name=name)
        while (claimed := claims.assignment_claim_next(user=annotator, project=proj, now=NOW)) is not None:
            number = int(claimed.item.external_id.removeprefix("unsure"))
            submissions.assignment_submit(
                assignment_id=claimed.pk, user=annotator, label="cat" if number % 2 else "dog", now=NOW
            )
    reliabilities.accuracy_refresh(now=NOW)
    proj.escalation_policy.refresh_from_db()
    temperature = proj.escalation_policy.model_temperature
    assert temperature is not None and temperature > 1.05
    (loaded,) = inputs.route_inputs(item_ids=[ids[0]])
    assert loaded.item_input.model_temperature == temperature
    # The model's sure labels were looked at again: read through T they no longer pass auto-accept.
    assert Item.objects.filter(project=proj, final_source=FinalSource.MODEL).count() < model_labeled
    assert selectors.decisions_verify(project=proj).mismatches == ()
    # A policy that does not learn it is handed none, whatever is stored.
    policies.policy_version_publish(
        policy=proj.escalation_policy,
        config=dataclasses.replace(DEFAULT_POLICY, learn_model_temperature=False),
        author=None,
        change_note="trust the model as it is",
    )
    (loaded,) = inputs.route_inputs(item_ids=[ids[0]])
    assert loaded.item_input.model_temperature is None


@pytest.mark.django_db
def test_gold_items_nobody_labeled_teach_the_live_refresh_the_temperature():
    proj = project(policy=dataclasses.replace(DEFAULT_POLICY, gold_check_rate=0.0))
    # Half the model's sure "dog"s are cats by the gold labels; one crowd label makes the project estimable.
    rows = [row(f"g{n}", {"dog": 0.99, "cat": 0.01}, gold="cat" if n % 2 else "dog") for n in range(30)]
    ingest_at(proj, [*rows, row("u", {"dog": 0.6, "cat": 0.4})])
    annotator = person(name="c1")
    claimed = claims.assignment_claim_next(user=annotator, project=proj, now=NOW)
    submissions.assignment_submit(assignment_id=claimed.pk, user=annotator, label="dog", now=NOW)
    reliabilities.accuracy_refresh(now=NOW)
    proj.escalation_policy.refresh_from_db()
    assert proj.escalation_policy.model_temperature > 3
