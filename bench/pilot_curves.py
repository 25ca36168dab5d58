"""The pilot's figures on the five shared real data sets (docs/pilot.md), judgments shuffled per item.

Usage: .venv/bin/python bench/pilot_curves.py [DATA_DIR] [--seeds 5] [--sets a,b] [--no-curve] [--choose-defaults]
       [--calibrate] [--no-scenarios]

For each data set: the default policy (routing.engine.policy.DEFAULT_POLICY) per seed against Dawid-Skene
and majority vote over all judgments, the issue's aim (accuracy >= the better baseline - 1 point within
50 % of the judgments where items have 8 or more, 70 % where they have 5 or fewer), and the curve of
accuracy against labels per item (consensus_min_posterior swept) beside majority vote and Dawid-Skene on
each item's first k shuffled judgments, that is on random subsets of the same size.

--choose-defaults: leave-one-data-set-out. Every policy of GRID is replayed on every set; for each set
the policy best on the other four (most aims met, then the smallest shortfall, then the most accuracy
above the aims) is scored on it. The
default is the policy best on all five.

--calibrate: `manage.py calibrate`'s search (pilot.calibration) on each set, once with the set's aim
accuracy as --target-accuracy and once with its aim's labels per item as --budget, chosen on a
calibration half of the gold items and reported on the held-out half.

Last, the model + crowd + expert scenarios of bench/model_scenarios.py (--no-scenarios skips them).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_scenarios import scenario_table  # noqa: E402  (bench/ is on sys.path when run as a script)

from pilot.calibration import candidate_policies, choose, evaluate_candidates, result_of
from pilot.curves import CURVE_POSTERIORS
from pilot.readers import load_pilot_data
from pilot.simulation import majority_vote_curve, prepare, run_pilot
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import PolicyConfig

SETS = ("snow-rte", "barzan-mozafari", "snow-wsd", "duck", "jn-product")
# The grid the defaults are chosen from: the stopping threshold and the per-item maximum.
GRID_POSTERIORS = (0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)
GRID_MAX_LABELS = (5, 10, 20)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclasses.dataclass(frozen=True)
class Aim:
    accuracy: float  # the better of majority vote and Dawid-Skene over all judgments, minus 1 point
    labels: float  # labels per item allowed: a share of the judgments available
    available: float
    share: float

    @classmethod
    def of(cls, report) -> Aim:
        b = report.baselines
        available = b["majority_vote_all"]["labels_per_item"]
        share = 0.5 if available >= 8 else 0.7
        best = max(b["majority_vote_all"]["accuracy"], b["dawid_skene_all"]["accuracy"])
        return cls(best - 0.01, share * available, available, share)

    def shortfall(self, accuracy: float, labels: float) -> float:
        """Points of accuracy missing plus points of the budget overspent (0 when the aim is met)."""
        return max(0.0, self.accuracy - accuracy) * 100 + max(0.0, labels / self.labels - 1.0) * 100


class Runs:
    """Replays of one data set, cached by policy: mean accuracy and labels per item over the seeds."""

    def __init__(self, folder: pathlib.Path, seeds: int):
        data = load_pilot_data(judgments=folder / "judgments.csv", gold=folder / "gold.csv")
        self.data = data
        self.setups = [prepare(data, seed=seed, shuffle_judgments=True) for seed in range(seeds)]
        first = run_pilot(self.setups[0], DEFAULT_POLICY)
        self.aim = Aim.of(first)
        self.baselines = [first.baselines] + [
            run_pilot(s, DEFAULT_POLICY, with_baselines=True).baselines for s in self.setups[1:]
        ]
        self._cache: dict[PolicyConfig, tuple[list[float], list[float], float]] = {}

    def of(self, policy: PolicyConfig) -> tuple[list[float], list[float], float]:
        if policy not in self._cache:
            start = time.perf_counter()
            reports = [run_pilot(s, policy, with_baselines=False) for s in self.setups]
            self._cache[policy] = (
                [r.adaptive["accuracy"] for r in reports],
                [r.adaptive["labels_per_item"] for r in reports],
                time.perf_counter() - start,
            )
        return self._cache[policy]

    def mean(self, policy: PolicyConfig) -> tuple[float, float]:
        accuracy, labels, _ = self.of(policy)
        return statistics.fmean(accuracy), statistics.fmean(labels)


def default_table(runs: dict[str, Runs]) -> None:
    seeds = len(next(iter(runs.values())).setups)
    print(f"\n## Default policy, judgments shuffled, {seeds} seeds (load {load_average()})")
    print("| data set | accuracy (per seed) | labels/item | share of judgments | MV all | DS all | aim | met |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        accuracy, labels, seconds = r.of(DEFAULT_POLICY)
        mv = statistics.fmean(b["majority_vote_all"]["accuracy"] for b in r.baselines)
        ds = statistics.fmean(b["dawid_skene_all"]["accuracy"] for b in r.baselines)
        a, lpi = statistics.fmean(accuracy), statistics.fmean(labels)
        met = a >= r.aim.accuracy and lpi <= r.aim.labels
        gap = "" if met else f" (short {r.aim.shortfall(a, lpi):.1f})"
        print(
            f"| {name} | **{a:.4f}** ({', '.join(f'{x:.3f}' for x in accuracy)}) | {lpi:.2f} | "
            f"{lpi / r.aim.available:.0%} | {mv:.4f} | {ds:.4f} | >= {r.aim.accuracy:.3f} at <= {r.aim.labels:.1f} | "
            f"{'yes' if met else 'no'}{gap} |"
        )


def curve_table(name: str, r: Runs) -> None:
    print(f"\n### {name}: accuracy against labels per item (load {load_average()})")
    print(
        "| posterior >= | accuracy | labels/item | MV on as many random labels | DS on as many random labels "
        "| above both |"
    )
    print("|---|---|---|---|---|---|")
    references = [majority_vote_curve(s.history, s.scored_gold, dawid_skene_too=True) for s in r.setups]
    ks = [row["labels_per_item"] for row in references[0]]

    def at(key: str, labels: float) -> float:
        # Mean over seeds, interpolated between whole numbers of labels per item.
        values = [np.interp(labels, ks, [row[key] for row in ref]) for ref in references]
        return float(statistics.fmean(values))

    for posterior in CURVE_POSTERIORS:
        policy = dataclasses.replace(DEFAULT_POLICY, consensus_min_posterior=posterior)
        accuracy, labels = r.mean(policy)
        mv, ds = at("accuracy", labels), at("dawid_skene_accuracy", labels)
        print(
            f"| {posterior} | {accuracy:.4f} | {labels:.2f} | {mv:.4f} | {ds:.4f} | "
            f"{'yes' if accuracy > max(mv, ds) else 'no'} |"
        )


def grid() -> list[PolicyConfig]:
    return [
        dataclasses.replace(DEFAULT_POLICY, consensus_min_posterior=p, max_crowd_labels=m)
        for p in GRID_POSTERIORS
        for m in GRID_MAX_LABELS
    ]


def score(runs: dict[str, Runs], policy: PolicyConfig, names) -> tuple[int, float, float]:
    """(aims met, -total shortfall, total accuracy above the aims) over the named sets: larger is better.
    The last breaks ties between policies that meet the same aims, towards the one with more to spare."""
    met, short, spare = 0, 0.0, 0.0
    for name in names:
        accuracy, labels = runs[name].mean(policy)
        s = runs[name].aim.shortfall(accuracy, labels)
        met += s == 0.0
        short += s
        spare += accuracy - runs[name].aim.accuracy
    return met, -short, spare


def choose_defaults(runs: dict[str, Runs]) -> None:
    policies = grid()
    print(f"\n## Leave one data set out ({len(policies)} policies; load {load_average()})")
    print("| held out | chosen on the other four (posterior, max labels) | held-out accuracy | labels/item | aim met |")
    print("|---|---|---|---|---|")
    for held in runs:
        others = [n for n in runs if n != held]
        best = max(policies, key=lambda p: score(runs, p, others))
        accuracy, labels = runs[held].mean(best)
        met = runs[held].aim.shortfall(accuracy, labels) == 0.0
        print(
            f"| {held} | {best.consensus_min_posterior}, {best.max_crowd_labels} | {accuracy:.4f} | {labels:.2f} | "
            f"{'yes' if met else 'no'} |"
        )
    best = max(policies, key=lambda p: score(runs, p, list(runs)))
    print(
        f"\nBest on all five: consensus_min_posterior {best.consensus_min_posterior}, "
        f"max_crowd_labels {best.max_crowd_labels} ({score(runs, best, list(runs))[0]} of {len(runs)} aims met)"
    )


def calibration_table(runs: dict[str, Runs], seed: int = 0) -> None:
    print(f"\n## Calibration: chosen on half the gold, reported on the other half (seed {seed}; load {load_average()})")
    print(
        "| data set | goal | chosen (posterior, overlap) | calibration accuracy | met there | held-out accuracy "
        "| labels/item | met held out |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        policies = candidate_policies(DEFAULT_POLICY, with_predictions=False)
        evaluation = evaluate_candidates(r.data, policies, seed=seed, shuffle_judgments=True)
        for goal in ({"target_accuracy": round(r.aim.accuracy, 3), "budget": None},
            {"target_accuracy": None, "budget": round(r.aim.labels, 2)}):
            best, met = choose(evaluation.candidates, **goal)
            result = result_of(evaluation, best, met=met, **goal)
            held = result.held_out
            if goal["target_accuracy"] is not None:
                label, kept = f"accuracy >= {goal['target_accuracy']}", held["accuracy"] >= goal["target_accuracy"]
            else:
                label, kept = f"<= {goal['budget']} labels/item", held["labels_per_item"] <= goal["budget"] + 1e-9
            print(
                f"| {name} | {label} | {result.policy.consensus_min_posterior}, {result.policy.crowd_overlap} | "
                f"{result.calibration['accuracy']:.4f} | {'yes' if met else 'no'} | {held['accuracy']:.4f} | "
                f"{held['labels_per_item']:.2f} | {'yes' if kept else 'no'} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--choose-defaults", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--no-scenarios", action="store_true", help="skip bench/model_scenarios.py's table")
    args = parser.parse_args()
    start = time.perf_counter()
    runs = {name: Runs(args.data_dir / name, args.seeds) for name in args.sets.split(",")}
    default_table(runs)
    if not args.no_curve:
        for name, r in runs.items():
            curve_table(name, r)
    if args.choose_defaults:
        choose_defaults(runs)
    if args.calibrate:
        calibration_table(runs)
    if not args.no_scenarios:
        scenario_table()
    print(f"\n{time.perf_counter() - start:.0f} s in all; load {load_average()}")


if __name__ == "__main__":
    main()
