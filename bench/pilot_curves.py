"""The pilot's figures on the shared real data sets (docs/pilot.md): judgments shuffled per item, several seeds.

Usage: .venv/bin/python bench/pilot_curves.py [DATA_DIR] [--seeds 5] [--no-curve]
For each data set: the suggested policy against Dawid-Skene and majority vote (all judgments, and at the
same number of labels per item), per seed and averaged; then the threshold sweep averaged over seeds.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.engine.types import PolicyConfig
from routing.simulation import curve, load_pilot_data, majority_vote_curve, prepare, run_pilot

# Policies suited to each data set (no model: crowd first; the posterior threshold sets the budget).
POLICIES = {
    "snow-rte": PolicyConfig(
        crowd_overlap=2, max_crowd_labels=10, consensus_min_agreement=0.5, consensus_min_posterior=0.95
    ),
    "barzan-mozafari": PolicyConfig(
        crowd_overlap=2, max_crowd_labels=5, consensus_min_agreement=0.5, consensus_min_posterior=0.825
    ),
}


def mean(values) -> float:
    return statistics.fmean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-curve", action="store_true")
    args = parser.parse_args()
    for name, policy in POLICIES.items():
        folder = args.data_dir / name
        data = load_pilot_data(judgments=folder / "judgments.csv", gold=folder / "gold.csv")
        print(
            f"\n## {name}: {len(data.history.items)} items, {data.history.n_judgments} judgments; "
            f"policy overlap {policy.crowd_overlap}, max {policy.max_crowd_labels}, posterior >= {policy.consensus_min_posterior}"
        )
        print("| seed | adaptive acc | labels/item | DS all | MV all | MV matched (k) | seconds |")
        print("|---|---|---|---|---|---|---|")
        rows = []
        setups = [prepare(data, seed=seed, shuffle_judgments=True) for seed in range(args.seeds)]
        for seed, setup in enumerate(setups):
            start = time.perf_counter()
            report = run_pilot(setup, policy)
            elapsed = time.perf_counter() - start
            a, b = report.adaptive, report.baselines
            rows.append(
                (
                    a["accuracy"],
                    a["labels_per_item"],
                    b["dawid_skene_all"]["accuracy"],
                    b["majority_vote_all"]["accuracy"],
                    b["majority_vote_matched"]["accuracy"],
                    b["majority_vote_matched"]["k"],
                    b["majority_vote_all"]["labels_per_item"],
                )
            )
            print(
                f"| {seed} | {a['accuracy']:.4f} | {a['labels_per_item']:.2f} | {b['dawid_skene_all']['accuracy']:.4f} | "
                f"{b['majority_vote_all']['accuracy']:.4f} | {b['majority_vote_matched']['accuracy']:.4f} ({b['majority_vote_matched']['k']}) | {elapsed:.1f} |"
            )
        cols = list(zip(*rows))
        print(
            f"| mean | {mean(cols[0]):.4f} | {mean(cols[1]):.2f} | {mean(cols[2]):.4f} | {mean(cols[3]):.4f} | {mean(cols[4]):.4f} | |"
        )
        print(
            f"\nadaptive - Dawid-Skene: {mean(cols[0]) - mean(cols[2]):+.4f}; labels used: {mean(cols[1]) / mean(cols[6]):.0%} of all judgments; "
            f"adaptive - majority vote at equal labels: {mean(cols[0]) - mean(cols[4]):+.4f}"
        )
        if args.no_curve:
            continue
        sweeps = [curve(setup, policy) for setup in setups]
        mv = [majority_vote_curve(setup.history, setup.scored_gold) for setup in setups]
        print("\n| consensus_min_posterior | accuracy (mean, min-max over seeds) | labels/item |")
        print("|---|---|---|")
        for n, row in enumerate(sweeps[0]):
            accs = [s[n]["accuracy"] for s in sweeps]
            print(
                f"| {row['consensus_min_posterior']} | {mean(accs):.4f} ({min(accs):.3f}-{max(accs):.3f}) | "
                f"{mean(s[n]['labels_per_item'] for s in sweeps):.2f} |"
            )
        print("\n| majority vote, first k | accuracy (mean over seeds) | labels/item |")
        print("|---|---|---|")
        for n, row in enumerate(mv[0]):
            print(
                f"| {row['k']} | {mean(m[n]['accuracy'] for m in mv):.4f} | {mean(m[n]['labels_per_item'] for m in mv):.2f} |"
            )


if __name__ == "__main__":
    main()
