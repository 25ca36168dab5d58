"""Calibration: the search meets its goal on a synthetic crowd, and the command stores only a draft."""

import dataclasses
import io
import json
import pathlib

import pytest
from django.core.management import CommandError, call_command

from pilot.calibration import Candidate, calibrate, candidate_policies, choose, with_accuracy_trend
from pilot.synthetic import synthetic_data
from routing import policies
from routing.engine.types import PolicyConfig

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "pilot"
# 3 good and 5 noisy annotators; every item labelled by all 8.
ACCURACIES = [0.92, 0.9, 0.88, 0.62, 0.6, 0.6, 0.58, 0.55]
BASE = PolicyConfig(max_crowd_labels=8, consensus_min_agreement=0.5)
# A coarser grid than the command's, to keep the tests fast.
GRID = [
    dataclasses.replace(BASE, crowd_overlap=overlap, consensus_min_posterior=posterior)
    for overlap in (1, 2)
    for posterior in (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
]


@pytest.fixture(scope="module")
def crowd():
    return synthetic_data(n_items=400, judgments_per_item=8, accuracies=ACCURACIES, seed=17)


def test_target_accuracy_is_met_on_held_out_items_for_fewer_labels(crowd):
    result = calibrate(crowd, BASE, target_accuracy=0.9, seed=3, shuffle_judgments=True, policies=GRID)
    assert result.met
    assert result.calibration["accuracy_trend"] >= 0.9
    assert result.held_out["accuracy"] >= 0.9 - 0.03
    assert result.held_out["labels_per_item"] < 0.75 * 8
    # It is the cheapest candidate that met the target on the calibration split.
    meeting = [c for c in result.candidates if c.calibration["accuracy_trend"] >= 0.9]
    assert result.calibration["cost_per_item"] == min(c.calibration["cost_per_item"] for c in meeting)
    assert result.calibration_items + result.held_out_items == 400
    # Fields other than the searched thresholds are the base policy's.
    assert (
        dataclasses.replace(
            result.policy,
            consensus_min_posterior=BASE.consensus_min_posterior,
            crowd_overlap=BASE.crowd_overlap,
        )
        == BASE
    )


def test_budget_gives_the_most_accurate_policy_within_it(crowd):
    result = calibrate(crowd, BASE, budget=3.0, seed=3, shuffle_judgments=True, policies=GRID)
    assert result.met
    assert result.calibration["labels_per_item"] <= 3.0
    within = [c for c in result.candidates if c.calibration["labels_per_item"] <= 3.0]
    assert result.calibration["accuracy_trend"] == max(c.calibration["accuracy_trend"] for c in within)
    assert result.held_out["labels_per_item"] <= 3.3


def test_unreachable_target_is_reported_not_met(crowd):
    result = calibrate(
        crowd, BASE, target_accuracy=1.0, seed=3, policies=candidate_policies(BASE, with_predictions=False)[:4]
    )
    assert not result.met
    assert result.calibration["accuracy_trend"] == max(c.calibration["accuracy_trend"] for c in result.candidates)


def _candidate(accuracy, labels, cost=None):
    figures = {"accuracy": accuracy, "labels_per_item": labels, "cost_per_item": labels if cost is None else cost}
    return Candidate(policy=PolicyConfig(), calibration=figures, held_out=figures)


@pytest.mark.parametrize(
    "goal,figures,expected,met",
    [
        ({"target_accuracy": 0.9}, [(0.95, 5), (0.91, 3), (0.89, 2)], 1, True),
        ({"target_accuracy": 0.9}, [(0.91, 3, 9.0), (0.92, 4, 4.0)], 1, True),  # cost, not labels, decides
        ({"target_accuracy": 0.99}, [(0.95, 5), (0.91, 3)], 0, False),
        ({"budget": 3.0}, [(0.95, 5), (0.91, 3), (0.89, 2)], 1, True),
        ({"budget": 1.0}, [(0.95, 5), (0.91, 3), (0.89, 2)], 2, False),
    ],
)
def test_choose(goal, figures, expected, met):
    candidates = [_candidate(*f) for f in figures]
    chosen, was_met = choose(candidates, target_accuracy=goal.get("target_accuracy"), budget=goal.get("budget"))
    assert chosen is candidates[expected] and was_met is met


def test_accuracy_trend_pools_a_lucky_candidate():
    lucky = [_candidate(0.80, 1.0), _candidate(0.92, 2.0), _candidate(0.88, 3.0), _candidate(0.95, 4.0)]
    trended = with_accuracy_trend(lucky)
    assert [c.calibration["accuracy_trend"] for c in trended] == pytest.approx([0.80, 0.90, 0.90, 0.95])
    # Raw figures would take the 2-label candidate for a 0.91 target; the trend says 4 labels are needed.
    assert choose(lucky, target_accuracy=0.91, budget=None)[0] is lucky[1]
    assert choose(trended, target_accuracy=0.91, budget=None)[0] is trended[3]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "exactly one"),
        ({"target_accuracy": 0.9, "budget": 2.0}, "exactly one"),
        ({"target_accuracy": 1.5}, "target accuracy"),
        ({"budget": -1.0}, "budget"),
    ],
)
def test_calibrate_rejects_bad_goals(crowd, kwargs, message):
    with pytest.raises(ValueError, match=message):
        calibrate(crowd, BASE, seed=0, **kwargs)


def test_candidates_vary_only_the_thresholds_and_stay_valid():
    with_model = candidate_policies(PolicyConfig(max_crowd_labels=2), with_predictions=True)
    assert {p.crowd_overlap for p in with_model} == {1, 2}
    assert len({p.auto_accept_min_top_probability for p in with_model}) > 1
    without = candidate_policies(PolicyConfig(), with_predictions=False)
    assert {p.auto_accept_min_top_probability for p in without} == {PolicyConfig().auto_accept_min_top_probability}


@pytest.mark.django_db
def test_calibrate_command_saves_a_draft_that_is_not_published(tmp_path):
    from labeling.services import project_create

    project = project_create(name="Pilot", slug="pilot", classes=["no", "yes"])
    live_before = policies.policy_for_project(project).live_version
    out = tmp_path / "calibration.json"
    call_command(
        "calibrate",
        judgments=FIXTURES / "judgments.csv",
        gold=FIXTURES / "gold.csv",
        workers=FIXTURES / "workers.csv",
        target_accuracy=0.85,
        seed=1,
        save_draft="pilot",
        out=out,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    doc = json.loads(out.read_text())
    policy = policies.policy_for_project(project)
    assert policy.live_version == live_before  # nothing published
    draft = policy.versions.get(number=doc["draft"]["version"])
    assert draft.is_draft
    assert PolicyConfig.from_dict(draft.config) == PolicyConfig.from_dict(doc["policy"])
    assert "calibrate" in draft.change_note and "held-out accuracy" in draft.change_note
    assert {"accuracy", "labels_per_item", "cost_per_item", "items"} <= set(doc["held_out"])


def test_calibrate_command_needs_a_goal_and_a_known_project():
    with pytest.raises(CommandError):
        call_command("calibrate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv")


@pytest.mark.django_db
def test_calibrate_command_rejects_an_unknown_project():
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command(
            "calibrate", judgments=FIXTURES / "judgments.csv", gold=FIXTURES / "gold.csv", budget=2.0, save_draft="nope"
        )
