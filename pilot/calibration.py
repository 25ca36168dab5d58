"""Choose a policy's thresholds from history: the cheapest policy reaching a target accuracy, or the most
accurate one within a labels-per-item budget (pure: no ORM; see docs/pilot.md).

The gold items are split (seeded) into a calibration half, the only gold the search looks at, and a
held-out half on which the chosen policy is reported. Candidates are judged by their calibration
accuracy smoothed over cost (isotonic), so a lucky candidate is not chosen for its luck. Every candidate is
replayed by `simulation`, so the figures are those live routing would reach on this history.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilot.curves import CURVE_POSTERIORS, CURVE_TOP_PROBABILITIES
from pilot.readers import PilotData
from pilot.simulation import PilotSetup, adaptive_metrics, baselines, prepare, replay
from routing.engine.policy import policy_errors
from routing.engine.reliability import DEFAULT_LEARNER, LearnerOptions
from routing.engine.types import PolicyConfig

# Overlaps tried (those above the policy's max_crowd_labels are skipped).
OVERLAPS = (1, 2, 3)
# The thresholds the search varies, and how far a recommended one must move from the live value before
# the scheduled recommendation calls the difference material (docs/pilot.md). crowd_overlap is a whole
# number: any change is material.
THRESHOLDS = ("consensus_min_posterior", "crowd_overlap", "auto_accept_min_top_probability")
MATERIAL_CHANGE = 0.05
REPORTED = (
    "accuracy",
    "labels_per_item",
    "expert_labels_per_item",
    "auto_accept_rate",
    "escalation_rate",
    "cost_per_item",
)


@dataclass(frozen=True)
class Candidate:
    policy: PolicyConfig
    calibration: Mapping[str, float]
    held_out: Mapping[str, float]

    def summary(self) -> dict[str, Any]:
        """The varied fields and the calibration figures (what the search saw)."""
        return {
            "consensus_min_posterior": self.policy.consensus_min_posterior,
            "crowd_overlap": self.policy.crowd_overlap,
            "auto_accept_min_top_probability": self.policy.auto_accept_min_top_probability,
            **{key: self.calibration[key] for key in REPORTED},
            "accuracy_trend": self.calibration.get("accuracy_trend"),
        }


@dataclass(frozen=True)
class CalibrationResult:
    policy: PolicyConfig  # the chosen thresholds on top of the base policy
    met: bool  # whether some candidate met the target (or budget) on the calibration split
    target_accuracy: float | None
    budget: float | None
    calibration: Mapping[str, float]
    held_out: Mapping[str, float]
    held_out_baselines: Mapping[str, Mapping[str, float]]
    calibration_items: int
    held_out_items: int
    candidates: tuple[Candidate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "target_accuracy": self.target_accuracy,
            "budget": self.budget,
            "chosen": {
                "consensus_min_posterior": self.policy.consensus_min_posterior,
                "crowd_overlap": self.policy.crowd_overlap,
                "auto_accept_min_top_probability": self.policy.auto_accept_min_top_probability,
            },
            "policy": self.policy.to_dict(),
            "calibration": {"items": self.calibration_items, **dict(self.calibration)},
            "held_out": {"items": self.held_out_items, **dict(self.held_out)},
            "held_out_baselines": {k: dict(v) for k, v in self.held_out_baselines.items()},
            "candidates": [c.summary() for c in self.candidates],
        }


def candidate_policies(base: PolicyConfig, *, with_predictions: bool) -> list[PolicyConfig]:
    """Base policy with consensus_min_posterior, crowd_overlap and (with predictions) the auto-accept
    top probability varied; invalid combinations are left out."""
    tops = CURVE_TOP_PROBABILITIES if with_predictions else (base.auto_accept_min_top_probability,)
    out = []
    for overlap in OVERLAPS:
        if overlap > base.max_crowd_labels:
            continue
        for top in tops:
            for posterior in CURVE_POSTERIORS:
                policy = dataclasses.replace(
                    base, crowd_overlap=overlap, consensus_min_posterior=posterior, auto_accept_min_top_probability=top
                )
                if not policy_errors(policy):
                    out.append(policy)
    return out


def split_scored(setup: PilotSetup, held_out_share: float, seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """(calibration, held_out) halves of the scored gold, seeded."""
    items = list(setup.scored_gold)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n_held = round(held_out_share * len(items))
    held = set(rng.permutation(len(items))[:n_held].tolist())
    calibration = {item: setup.scored_gold[item] for n, item in enumerate(items) if n not in held}
    held_out = {item: setup.scored_gold[item] for n, item in enumerate(items) if n in held}
    return calibration, held_out


def with_accuracy_trend(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates with calibration["accuracy_trend"]: their accuracy fitted non-decreasing in cost.

    On a few hundred gold items one candidate's accuracy is a point or two of luck either way; choosing
    the cheapest candidate that happens to touch the target picks that luck (and the held-out split then
    disappoints). The isotonic fit (more labels never hurt, on average) pools such lucky neighbours.
    """
    if not candidates:
        return []
    # Imported here: scikit-learn brings scipy, pandas and pyarrow (~60 MiB), and this module is loaded by
    # the policy admin in every web process while only a calibration run (a background task) fits.
    from sklearn.isotonic import IsotonicRegression

    cost = np.array([c.calibration["cost_per_item"] + 1e-6 * c.calibration["labels_per_item"] for c in candidates])
    accuracy = np.array([c.calibration["accuracy"] for c in candidates])
    trend = IsotonicRegression(increasing=True).fit_transform(cost, accuracy)
    return [
        dataclasses.replace(c, calibration={**c.calibration, "accuracy_trend": float(t)})
        for c, t in zip(candidates, trend, strict=True)
    ]


def choose(
    candidates: Sequence[Candidate], *, target_accuracy: float | None, budget: float | None
) -> tuple[Candidate, bool]:
    """The cheapest candidate reaching the target, or the most accurate within the budget, judged on the
    calibration split's accuracy trend when present (see `with_accuracy_trend`), else its accuracy.
    When none qualifies: the most accurate (target) or the fewest labels (budget), met=False."""

    def accuracy(c: Candidate) -> float:
        return c.calibration.get("accuracy_trend", c.calibration["accuracy"])

    def cost(c: Candidate) -> tuple[float, float]:
        return c.calibration["cost_per_item"], c.calibration["labels_per_item"]

    if target_accuracy is not None:
        meeting = [c for c in candidates if accuracy(c) >= target_accuracy]
        if meeting:
            return min(meeting, key=lambda c: (*cost(c), -accuracy(c))), True
        return max(candidates, key=lambda c: (accuracy(c), *(-x for x in cost(c)))), False
    assert budget is not None
    within = [c for c in candidates if c.calibration["labels_per_item"] <= budget + 1e-9]
    if within:
        return max(within, key=lambda c: (accuracy(c), *(-x for x in cost(c)))), True
    return min(candidates, key=lambda c: (c.calibration["labels_per_item"], -accuracy(c))), False


def thresholds(policy: PolicyConfig) -> dict[str, float | int]:
    """The searched thresholds of a policy, by name."""
    return {name: getattr(policy, name) for name in THRESHOLDS}


def material_changes(
    recommended: PolicyConfig, live: PolicyConfig, *, tolerance: float = MATERIAL_CHANGE
) -> list[dict[str, Any]]:
    """The searched thresholds on which `recommended` differs materially from `live`: a probability by
    more than `tolerance`, crowd_overlap by any amount. Each as {"field", "live", "recommended"}."""
    changes = []
    for name in THRESHOLDS:
        before, after = getattr(live, name), getattr(recommended, name)
        moved = before != after if isinstance(before, int) else abs(after - before) > tolerance + 1e-12
        if moved:
            changes.append({"field": name, "live": before, "recommended": after})
    return changes


@dataclass(frozen=True)
class Evaluation:
    """Every candidate replayed once, with its calibration figures (and accuracy trend) and held-out ones."""

    setup: PilotSetup
    calibration_gold: Mapping[str, str]
    held_out_gold: Mapping[str, str]
    candidates: tuple[Candidate, ...]


def evaluate_candidates(
    data: PilotData,
    policies: Sequence[PolicyConfig],
    *,
    seed: int,
    gold_checks: float = 0.0,
    shuffle_judgments: bool = False,
    held_out_share: float = 0.5,
    learner: LearnerOptions = DEFAULT_LEARNER,
    progress: Callable[[float], None] | None = None,
) -> Evaluation:
    """Replay each policy on the same seeded split and order; `progress(share done)` after each replay."""
    if not 0.0 < held_out_share < 1.0:
        raise ValueError(f"held-out share must be in (0, 1), got {held_out_share}")
    if not policies:
        raise ValueError("no candidate policies to evaluate")
    setup = prepare(data, seed=seed, gold_checks=gold_checks, shuffle_judgments=shuffle_judgments)
    calibration_gold, held_out_gold = split_scored(setup, held_out_share, seed)
    if not calibration_gold or not held_out_gold:
        raise ValueError("too few gold items to split into calibration and held-out halves")
    k = len(setup.history.classes)
    candidates = []
    for done, policy in enumerate(policies, start=1):
        result = replay(setup.history, policy, seed=setup.order_seed, checks=setup.checks, learner=learner)
        candidates.append(
            Candidate(
                policy=policy,
                calibration=adaptive_metrics(result, calibration_gold, k),
                # Computed now, read only for the chosen candidate after the choice.
                held_out=adaptive_metrics(result, held_out_gold, k),
            )
        )
        if progress is not None:
            progress(done / len(policies))
    return Evaluation(setup, calibration_gold, held_out_gold, tuple(with_accuracy_trend(candidates)))


def calibrate(
    data: PilotData,
    base_policy: PolicyConfig,
    *,
    target_accuracy: float | None = None,
    budget: float | None = None,
    seed: int,
    gold_checks: float = 0.0,
    shuffle_judgments: bool = False,
    held_out_share: float = 0.5,
    learner: LearnerOptions = DEFAULT_LEARNER,
    policies: Sequence[PolicyConfig] | None = None,
    progress: Callable[[float], None] | None = None,
) -> CalibrationResult:
    """Search the thresholds of `base_policy` on the calibration split; report the choice on the held-out one.

    Exactly one of `target_accuracy` (reach it as cheaply as possible) or `budget` (labels per item,
    as accurately as possible) is required. `progress`, when given, is called with the share of
    candidates replayed so far (0 to 1) after each one, for a progress bar.
    """
    if (target_accuracy is None) == (budget is None):
        raise ValueError("give exactly one of target_accuracy or budget")
    if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target accuracy must be in (0, 1], got {target_accuracy}")
    if budget is not None and (not math.isfinite(budget) or budget < 0):
        raise ValueError(f"budget must be a number of labels per item ≥ 0, got {budget}")
    chosen_policies = (
        policies
        if policies is not None
        else candidate_policies(base_policy, with_predictions=bool(data.history.predictions))
    )
    evaluation = evaluate_candidates(
        data,
        chosen_policies,
        seed=seed,
        gold_checks=gold_checks,
        shuffle_judgments=shuffle_judgments,
        held_out_share=held_out_share,
        learner=learner,
        progress=progress,
    )
    best, met = choose(evaluation.candidates, target_accuracy=target_accuracy, budget=budget)
    return result_of(evaluation, best, met=met, target_accuracy=target_accuracy, budget=budget)


def result_of(
    evaluation: Evaluation, best: Candidate, *, met: bool, target_accuracy: float | None, budget: float | None
) -> CalibrationResult:
    """The CalibrationResult of choosing `best` among the evaluated candidates."""
    setup = evaluation.setup
    return CalibrationResult(
        policy=best.policy,
        met=met,
        target_accuracy=target_accuracy,
        budget=budget,
        calibration={key: best.calibration[key] for key in (*REPORTED, "accuracy_trend")},
        held_out={key: best.held_out[key] for key in REPORTED},
        held_out_baselines=baselines(
            setup.history, setup.checks, evaluation.held_out_gold, matched_labels=best.held_out["labels_per_item"]
        ),
        calibration_items=len(evaluation.calibration_gold),
        held_out_items=len(evaluation.held_out_gold),
        candidates=evaluation.candidates,
    )
