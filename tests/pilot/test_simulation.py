"""The pilot simulator: file parsing, replay rules, scoring and baselines, and the `simulate` command."""

import dataclasses
import io
import json
import pathlib
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from pilot import simulation
from pilot.readers import (
    History,
    PilotData,
    PilotDataError,
    Worker,
    class_order,
    load_pilot_data,
    read_gold,
    read_judgments,
    read_predictions,
    read_workers,
)
from pilot.simulation import expected_accuracy, replay, simulate
from pilot.synthetic import synthetic_data
from routing import policies
from routing.engine.policy import DEFAULT_POLICY, evaluate
from routing.engine.types import Outcome, PolicyConfig

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "pilot"
CROWD_POLICY = PolicyConfig(
    crowd_overlap=2, max_crowd_labels=4, consensus_min_agreement=0.5, consensus_min_posterior=0.9
)


def csv_text(text: str, name: str = "test.csv") -> io.StringIO:
    stream = io.StringIO(text)
    stream.name = name
    return stream


def fixture_data(**extra) -> PilotData:
    return load_pilot_data(judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", **extra)


def history(
    judgments: dict[str, list[tuple[str, str]]], *, classes=("a", "b"), workers=None, predictions=None
) -> History:
    return History(
        classes=classes,
        items=tuple(judgments),
        judgments=tuple(tuple(js) for js in judgments.values()),
        workers=workers or {},
        predictions=predictions or {},
    )


# --- reading the files -------------------------------------------------------------------------------------


def test_judgments_keep_file_order_and_ignore_extra_columns():
    rows = read_judgments(csv_text("item,worker,label,comment\n1,w1,a,first\n1,w2,b,\n2,w1,a,x\n"))
    assert rows == [("1", "w1", "a"), ("1", "w2", "b"), ("2", "w1", "a")]


@pytest.mark.parametrize(
    "reader,text,message",
    [
        (read_judgments, "item,label\n1,a\n", r"missing column\(s\) worker"),
        (read_judgments, "item,worker,label\n1,w1,a\n2,,b\n", r"row 3: worker is empty"),
        (read_judgments, "item,worker,label\n", r"no judgments"),
        (read_judgments, "item,worker,label\n1,w1,a,extra\n", r"row 2: more fields than the header"),
        (read_gold, "item,label\n1,a\n1,b\n", r"row 3: item '1' is listed twice"),
        (read_workers, "worker,role\nw1,boss\n", r"row 2: role 'boss' must be crowd or expert"),
        (read_workers, "worker,role,cost\nw1,expert,-3\n", r"row 2: cost must be positive"),
        (read_workers, "worker,role,cost\nw1,expert,cheap\n", r"row 2: cost 'cheap' is not a number"),
    ],
)
def test_bad_rows_are_named(reader, text, message):
    with pytest.raises(PilotDataError, match=message):
        reader(csv_text(text, "input.csv"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("item,a\n1,0.5\n", r"no column for class\(es\) b"),
        ("item,a,b\n1,0.5,lots\n", r"row 2: b 'lots' is not a number"),
        ("item,a,b\n1,0.5,nan\n", r"row 2: b 'nan' is not a finite number"),
        ("item,a,b\n1,0.5,-0.1\n", r"row 2: b is negative"),
        ("item,a,b\n1,0,0\n", r"row 2: probabilities sum to 0"),
        ("item,a,b\n1,0.5,0.5\n1,0.5,0.5\n", r"row 3: item '1' is listed twice"),
    ],
)
def test_bad_predictions_are_named(text, message):
    with pytest.raises(PilotDataError, match=message):
        read_predictions(csv_text(text), ("a", "b"))


def test_predictions_are_renormalised_in_class_order_and_other_columns_ignored():
    predictions = read_predictions(csv_text("item,model,b,a\n1,clf,3,1\n"), ("a", "b"))
    assert predictions == {"1": (0.25, 0.75)}


@pytest.mark.parametrize(
    "labels,expected",
    [(["10", "2", "1"], ("1", "2", "10")), (["pos", "neg"], ("neg", "pos")), (["2", "x"], ("2", "x"))],
)
def test_class_order(labels, expected):
    assert class_order(labels) == expected


def test_load_pilot_data_from_fixtures():
    data = fixture_data(predictions=FIXTURES / "predictions.csv", workers=FIXTURES / "workers.csv")
    h = data.history
    assert h.classes == ("no", "yes")
    assert h.items[:3] == ("i0", "i1", "i2")
    assert h.judgments[0][0] == ("c1", "yes")  # file order
    assert h.role("e0") == "expert" and h.role("c0") == "crowd" and h.role("stranger") == "crowd"
    assert h.workers["e0"].cost == 8.0
    assert "unknown-item" not in data.gold  # gold for an item that has nothing to route is ignored
    assert len(data.gold) == 40
    assert h.predictions["i0"] == pytest.approx((0.4677, 0.5323), abs=1e-4)


def test_gold_label_outside_the_judged_classes_becomes_a_class():
    data = load_pilot_data(judgments=csv_text("item,worker,label\n1,w,a\n2,w,a\n"), gold=csv_text("item,label\n1,b\n"))
    assert data.history.classes == ("a", "b")


# --- replay rules --------------------------------------------------------------------------------------------


def test_no_gold_leakage_flipping_scored_gold_changes_no_decision():
    data = synthetic_data(n_items=120, judgments_per_item=5, accuracies=[0.9, 0.8, 0.7, 0.6, 0.6, 0.55], seed=3)
    flipped = dataclasses.replace(
        data, gold={item: ("pos" if label == "neg" else "neg") for item, label in data.gold.items()}
    )
    first = simulate(data, CROWD_POLICY, seed=5, gold_checks=0.2, shuffle_judgments=True, record_steps=True)
    # The checks are the same items in both runs (same seed); flip only the scored ones back.
    checks = first.setup.checks
    flipped = dataclasses.replace(flipped, gold={i: checks.get(i, label) for i, label in flipped.gold.items()})
    second = simulate(flipped, CROWD_POLICY, seed=5, gold_checks=0.2, shuffle_judgments=True, record_steps=True)
    assert second.setup.checks == checks
    assert [s.decision for s in first.result.steps] == [s.decision for s in second.result.steps]
    assert first.result.outcomes == second.result.outcomes
    # ...while the score sees the flipped gold: accuracy becomes 1 - accuracy.
    assert second.adaptive["accuracy"] == pytest.approx(1 - first.adaptive["accuracy"])


def test_replay_cannot_see_scored_gold():
    """`replay` takes the history and the checks only: there is no way to hand it the scored gold."""
    import inspect

    assert "gold" not in {f.name for f in dataclasses.fields(History)}
    assert set(inspect.signature(replay).parameters) == {
        "history",
        "policy",
        "seed",
        "checks",
        "learner",
        "record_steps",
    }


def test_exhausted_item_decides_with_what_it_has():
    h = history({"x": [("w1", "b")], "y": [("w1", "a"), ("w2", "a"), ("w3", "a")]})
    policy = PolicyConfig(crowd_overlap=3, max_crowd_labels=3)
    result = replay(h, policy, seed=0, record_steps=True)
    x = result.outcomes["x"]
    assert (x.label, x.source, x.exhausted, x.crowd_labels) == ("b", "consensus", True, 1)
    # It asked for 3 labels first, then again for more, and was closed when none was left.
    asked = [s.decision for s in result.steps if s.item == "x"]
    assert asked[0].outcome == Outcome.CROWD and asked[0].labels_requested == 3
    assert asked[-1].outcome == Outcome.CROWD


def test_item_without_judgments_falls_back_to_the_model_or_stays_undecided():
    h = history(
        {"m": [], "n": []},
        predictions={"m": (0.6, 0.4)},
    )
    result = replay(h, DEFAULT_POLICY, seed=0)
    assert (result.outcomes["m"].label, result.outcomes["m"].source, result.outcomes["m"].exhausted) == (
        "a",
        "model",
        True,
    )
    assert (result.outcomes["n"].label, result.outcomes["n"].source) == ("", "")


def test_no_prediction_means_crowd_first():
    h = history({"x": [("w1", "a"), ("w2", "a"), ("w3", "a")]})
    result = replay(h, DEFAULT_POLICY, seed=0, record_steps=True)
    first = result.steps[0].decision
    assert first.outcome == Outcome.CROWD
    assert [r.code for r in first.reasons] == ["no_prediction"]
    assert result.steps[0].item_input.predictions == ()


def test_confident_model_is_auto_accepted_without_labels():
    h = history({"x": [("w1", "b"), ("w2", "b")]}, predictions={"x": (0.98, 0.02)})
    outcome = replay(h, DEFAULT_POLICY, seed=0).outcomes["x"]
    assert (outcome.label, outcome.source, outcome.crowd_labels) == ("a", "model", 0)


def test_judgments_are_revealed_in_file_order_by_role():
    workers = {"e1": Worker(role="expert"), "e2": Worker(role="expert")}
    h = history({"x": [("e1", "b"), ("w1", "a"), ("w2", "b"), ("e2", "a"), ("w3", "a"), ("w4", "b")]}, workers=workers)
    # max 2 crowd labels, then an expert: w1, w2 disagree, so the policy escalates.
    policy = PolicyConfig(crowd_overlap=2, max_crowd_labels=2, second_expert_on_conflict=False)
    result = replay(h, policy, seed=0, record_steps=True)
    last = result.steps[-1].item_input.annotations
    assert [(a.annotator_id, a.label, a.role) for a in last] == [
        (2, "a", "crowd"),
        (3, "b", "crowd"),
        (1, "b", "expert"),
    ]
    outcome = result.outcomes["x"]
    assert (outcome.label, outcome.source, outcome.expert_labels, outcome.escalated) == ("b", "expert", 1, True)
    assert outcome.cost == pytest.approx(2 + policy.expert_cost)


def test_expert_labels_come_only_from_expert_workers():
    data = fixture_data(workers=FIXTURES / "workers.csv")
    policy = PolicyConfig(crowd_overlap=2, max_crowd_labels=2, consensus_min_posterior=0.97)
    report = simulate(data, policy, seed=1, record_steps=True)
    enc_workers = list(dict.fromkeys(w for js in data.history.judgments for w, _ in js))
    experts_seen = 0
    for step in report.result.steps:
        for a in step.item_input.annotations:
            assert data.history.role(enc_workers[a.annotator_id - 1]) == a.role
            experts_seen += a.role == "expert"
    assert experts_seen > 0
    assert report.adaptive["expert_labels_per_item"] > 0
    # Expert labels cost what workers.csv says (8), crowd labels 1.
    for outcome in report.result.outcomes.values():
        assert outcome.cost == pytest.approx(outcome.crowd_labels + 8 * outcome.expert_labels)


def test_without_experts_an_escalation_decides_with_what_it_has():
    h = history({"x": [("w1", "a"), ("w2", "b"), ("w3", "b")]})
    policy = PolicyConfig(crowd_overlap=2, max_crowd_labels=2, consensus_min_posterior=0.99)
    result = replay(h, policy, seed=0, record_steps=True)
    assert result.steps[-1].decision.outcome == Outcome.EXPERT
    outcome = result.outcomes["x"]
    assert outcome.exhausted and outcome.escalated and outcome.expert_labels == 0 and outcome.crowd_labels == 2
    posterior = result.steps[-1].decision.posterior
    assert outcome.label == max(posterior, key=lambda c: (posterior[c], c == "a"))


def test_decisions_are_exactly_what_live_routing_returns():
    data = fixture_data(predictions=FIXTURES / "predictions.csv", workers=FIXTURES / "workers.csv")
    policy = PolicyConfig.from_dict(json.loads((FIXTURES / "policy.json").read_text()))
    report = simulate(data, policy, seed=2, gold_checks=0.2, shuffle_judgments=True, record_steps=True)
    steps = report.result.steps
    assert len(steps) > len(data.history.items)  # several rounds
    assert {s.decision.outcome for s in steps} >= {Outcome.ACCEPT, Outcome.CROWD}
    for step in steps:
        assert evaluate(step.item_input, policy, step.reliabilities) == step.decision
        # Reliabilities were learned during the replay (not the role priors) once labels were revealed.
    assert any(step.reliabilities for step in steps)


def test_same_seed_same_output_and_other_seeds_change_the_order():
    data = fixture_data(workers=FIXTURES / "workers.csv")
    one = simulate(data, CROWD_POLICY, seed=4, shuffle_judgments=True, record_steps=True)
    again = simulate(data, CROWD_POLICY, seed=4, shuffle_judgments=True, record_steps=True)
    assert one.to_dict() == again.to_dict()
    assert [s.item for s in one.result.steps] == [s.item for s in again.result.steps]
    other = simulate(data, CROWD_POLICY, seed=5, shuffle_judgments=True, record_steps=True)

    def first_round(report):
        return [s.item for s in report.result.steps if s.round == 1]

    assert first_round(one) != first_round(other)
    assert sorted(first_round(one)) == sorted(first_round(other))


def test_shuffling_judgments_keeps_each_items_judgments():
    data = fixture_data()
    shuffled = data.history.shuffled(np.random.default_rng(0))
    assert shuffled.items == data.history.items
    assert shuffled.judgments != data.history.judgments
    for before, after in zip(data.history.judgments, shuffled.judgments):
        assert sorted(before) == sorted(after)


def test_gold_checks_are_not_scored_and_teach_the_learner():
    data = synthetic_data(n_items=200, judgments_per_item=3, accuracies=[0.95, 0.95, 0.55, 0.55], seed=8)
    report = simulate(data, CROWD_POLICY, seed=0, gold_checks=0.25, record_steps=True)
    doc = report.to_dict()
    assert doc["gold_check_items"] == 50 and doc["gold_items_scored"] == 150
    assert doc["gold_check_labels"] == 150
    checks = set(report.setup.checks)
    assert not checks & set(report.setup.scored_gold)
    assert not checks & {s.item for s in report.result.steps}  # checks are not routed
    # By round 2 the learner tells the good workers (c0, c1: 0.95) from the noisy ones (c2, c3: 0.55).
    names = list(dict.fromkeys(w for js in report.setup.history.judgments for w, _ in js))
    learned = {}
    for step in report.result.steps:
        if step.round == 2:
            for annotator_id, reliability in step.reliabilities.items():
                learned.setdefault(names[annotator_id - 1], np.trace(np.array(reliability.confusion)) / 2)
    assert min(learned["c0"], learned["c1"]) > max(learned["c2"], learned["c3"]) + 0.1


def test_report_has_the_contracted_keys():
    data = fixture_data(predictions=FIXTURES / "predictions.csv", workers=FIXTURES / "workers.csv")
    doc = simulate(data, DEFAULT_POLICY, seed=0).to_dict()
    assert {"items", "gold_items_scored", "policy", "adaptive", "baselines"} <= set(doc)
    assert {
        "accuracy",
        "labels_per_item",
        "expert_labels_per_item",
        "auto_accept_rate",
        "escalation_rate",
        "cost_per_item",
    } <= set(doc["adaptive"])
    assert {"majority_vote_all", "dawid_skene_all", "model_only", "majority_vote_matched"} <= set(doc["baselines"])
    assert {"accuracy", "labels_per_item"} <= set(doc["baselines"]["majority_vote_all"])
    assert {"accuracy", "labels_per_item"} <= set(doc["baselines"]["dawid_skene_all"])
    assert PolicyConfig.from_dict(doc["policy"]) == DEFAULT_POLICY
    json.dumps(doc, allow_nan=False)


def test_model_only_baseline_needs_predictions():
    assert "model_only" not in simulate(fixture_data(), DEFAULT_POLICY, seed=0).baselines


# --- scoring ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "posteriors,truth,expected",
    [
        ([[0.9, 0.1], [0.2, 0.8]], [0, 0], 0.5),
        ([[0.5, 0.5]], [1], 0.5),  # a tie is a fair coin
        ([[1 / 3, 1 / 3, 1 / 3]], [2], 1 / 3),
        ([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2]], [0, 2], 0.25),
    ],
)
def test_expected_accuracy_counts_ties_as_a_fair_coin(posteriors, truth, expected):
    assert expected_accuracy(np.array(posteriors), np.array(truth)) == pytest.approx(expected)


def test_majority_vote_baselines_by_hand():
    h = history(
        {
            "x": [("w1", "a"), ("w2", "b"), ("w3", "b")],
            "y": [("w1", "a"), ("w2", "a"), ("w3", "b")],
            "z": [("w1", "b"), ("w2", "a")],
        }
    )
    gold = {"x": "b", "y": "b", "z": "a"}
    found = simulation.baselines(h, {}, gold, matched_labels=1.4)
    # all: x right, y wrong, z a tie (1/2)
    assert found["majority_vote_all"] == {"accuracy": pytest.approx(0.5), "labels_per_item": pytest.approx(8 / 3)}
    # first judgment only (k = round(1.4) = 1): x wrong, y wrong, z wrong
    assert found["majority_vote_matched"]["k"] == 1
    assert found["majority_vote_matched"]["accuracy"] == pytest.approx(0.0)
    assert found["majority_vote_matched"]["labels_per_item"] == pytest.approx(1.0)


def test_adaptive_beats_majority_vote_at_equal_labels_on_a_synthetic_crowd():
    data = synthetic_data(
        n_items=400, judgments_per_item=7, accuracies=[0.92, 0.9, 0.88, 0.6, 0.58, 0.55, 0.55], seed=21
    )
    policy = dataclasses.replace(CROWD_POLICY, max_crowd_labels=7, consensus_min_posterior=0.8)
    report = simulate(data, policy, seed=0, shuffle_judgments=True)
    adaptive, base = report.adaptive, report.baselines
    assert adaptive["labels_per_item"] < 6.5
    assert adaptive["accuracy"] > base["majority_vote_matched"]["accuracy"]
    assert adaptive["accuracy"] > base["majority_vote_all"]["accuracy"] - 0.02


# --- the command -----------------------------------------------------------------------------------------------


def test_simulate_command_writes_json_and_an_offline_plot(tmp_path):
    out, plot = tmp_path / "report.json", tmp_path / "curve.html"
    stdout = io.StringIO()
    call_command(
        "simulate",
        judgments=FIXTURES / "judgments.csv",
        gold=FIXTURES / "gold.csv",
        predictions=FIXTURES / "predictions.csv",
        workers=FIXTURES / "workers.csv",
        policy=FIXTURES / "policy.json",
        seed=3,
        gold_checks=0.1,
        shuffle_judgments=True,
        out=out,
        plot=plot,
        stdout=stdout,
        stderr=io.StringIO(),
    )
    doc = json.loads(out.read_text())
    assert doc["gold_items_scored"] == 36 and doc["items"] == 40
    assert doc["policy"]["max_crowd_labels"] == 3
    assert doc["curve"] and doc["majority_vote_curve"]
    assert "accuracy" in stdout.getvalue() and "majority vote on the first k judgments" in stdout.getvalue()
    html = plot.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js is inline, nothing is fetched
    assert "cdn.plot.ly/plotly" not in html
    assert "Plotly.newPlot" in html


def test_simulate_command_prints_json_without_out():
    stdout = io.StringIO()
    call_command("simulate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", stdout=stdout)
    doc = json.loads(stdout.getvalue())
    assert doc["policy"] == DEFAULT_POLICY.to_dict()


@pytest.mark.parametrize(
    "policy_text,message",
    [
        ('{"crowd_overlap": 2, "colour": "red"}', "unknown policy fields: colour"),
        ('{"crowd_overlap": 0}', "crowd_overlap"),
    ],
)
def test_simulate_command_rejects_a_bad_policy(tmp_path, policy_text, message):
    path = tmp_path / "policy.json"
    path.write_text(policy_text)
    with pytest.raises(CommandError, match=message):
        call_command("simulate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", policy=path)


def test_simulate_command_names_a_bad_row(tmp_path):
    bad = tmp_path / "judgments.csv"
    bad.write_text("item,worker,label\n1,w1,a\n2,w2,\n")
    with pytest.raises(CommandError, match=r"judgments.csv row 3: label is empty"):
        call_command("simulate", judgments=bad, gold=FIXTURES / "gold.csv")


@pytest.mark.django_db
def test_simulate_command_uses_a_projects_live_policy():
    from labeling.services import project_create

    project = project_create(name="Pilot", slug="pilot", classes=["no", "yes"])
    live = PolicyConfig(crowd_overlap=1, max_crowd_labels=2, consensus_min_posterior=0.6)
    policies.policy_version_publish(
        policy=policies.policy_for_project(project), config=live, author=None, change_note="for the pilot"
    )
    stdout = io.StringIO()
    call_command(
        "simulate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", project="pilot", stdout=stdout
    )
    assert PolicyConfig.from_dict(json.loads(stdout.getvalue())["policy"]) == live
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("simulate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", project="nope")
