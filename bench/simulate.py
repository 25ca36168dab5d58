"""Replay speed of the pilot simulator on a synthetic history with known annotator accuracies.

Usage: .venv/bin/python bench/simulate.py [--items 10000] [--judgments 10] [--seed 0] [--profile]
Prints the replay time, the judgments in the history per second, the adaptive run's figures, and the CPU
time of one routing decision (`evaluate` on the inputs the replay recorded, as live routing calls it).
The aims (docs/pilot.md, issue 12): a history of 100,000 judgments replays in under 10 seconds; routing
one item takes under 1 ms of CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import pathlib
import pstats
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pilot.simulation import prepare, replay, run_pilot
from pilot.synthetic import synthetic_data
from routing.engine.policy import DEFAULT_POLICY, evaluate
from routing.engine.types import PolicyConfig

POLICY = PolicyConfig(crowd_overlap=2, max_crowd_labels=10, consensus_min_agreement=0.5, consensus_min_posterior=0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--judgments", type=int, default=10, help="judgments per item")
    parser.add_argument("--workers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--posterior",
        type=float,
        default=POLICY.consensus_min_posterior,
        help="consensus_min_posterior; 1.0 never accepts, so every judgment is revealed (the worst case)",
    )
    parser.add_argument("--profile", action="store_true", help="print the 25 most expensive functions")
    parser.add_argument("--json", help="also write the figures to this file (bench/report.py reads it)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    # A realistic crowd: most annotators fair, some very good, a few spammers.
    accuracies = np.clip(rng.normal(0.75, 0.12, size=args.workers), 0.5, 0.98).tolist()
    data = synthetic_data(n_items=args.items, judgments_per_item=args.judgments, accuracies=accuracies, seed=args.seed)
    setup = prepare(data, seed=args.seed, shuffle_judgments=True)
    n = setup.history.n_judgments
    profiler = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    report = run_pilot(setup, dataclasses.replace(POLICY, consensus_min_posterior=args.posterior), with_baselines=False)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    a = report.adaptive
    revealed = a["labels_per_item"] * len(setup.scored_gold)
    print(
        f"replayed {n:,} judgments ({args.items:,} items x {args.judgments}, {args.workers} workers) "
        f"in {elapsed:.2f} s: "
        f"{n / elapsed:,.0f} judgments/s; revealed {revealed:,.0f} in {report.result.rounds} rounds "
        f"({revealed / elapsed:,.0f} revealed/s)"
    )
    print(f"adaptive accuracy {a['accuracy']:.4f} at {a['labels_per_item']:.2f} labels/item")
    if args.json:
        figures = {"items": args.items, "judgments": n, "seconds": elapsed, "per_s": n / elapsed,
                   "accuracy": a["accuracy"], "labels_per_item": a["labels_per_item"]}
        pathlib.Path(args.json).write_text(json.dumps(figures))
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    routing_cpu(setup)


def routing_cpu(setup) -> None:
    """CPU per routing decision of the default policy, over every evaluation a replay made."""
    every = replay(setup.history, DEFAULT_POLICY, seed=setup.order_seed, record_steps=True).steps
    steps = every[:: max(1, len(every) // 20_000)]  # spread over all rounds, not only the first
    start = time.process_time()
    for step in steps:
        evaluate(step.item_input, DEFAULT_POLICY, step.reliabilities)
    per_item = (time.process_time() - start) / len(steps)
    labels = sum(len(s.item_input.annotations) for s in steps) / len(steps)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"routing one item (DEFAULT_POLICY, {len(steps):,} decisions, {labels:.1f} labels each on average): "
        f"{per_item * 1e6:,.0f} µs CPU (load {load})"
    )


if __name__ == "__main__":
    main()
