"""The expert scenario of docs/pilot.md: with model predictions and experts, a final accuracy above a single
expert's at well under the cost of sending everything to experts?

Usage: .venv/bin/python bench/expert_scenario.py [--items 3000] [--seeds 3] [--out DIR]
Synthetic data (pilot.synthetic.synthetic_data): 3 classes, 50 crowd workers right with probability
drawn from U(0.55, 0.80), 5 crowd judgments per item; 4 experts right with 0.88 / 0.90 / 0.91 / 0.93,
2 expert judgments per item; a model right on 75% of items. The data is written as the simulator's CSV
files (judgments, gold, predictions, workers) and read back by load_pilot_data, exactly as
`manage.py simulate` reads them (the command is printed). Baselines on the same scored items: one expert
per item (the first expert judgment: "everything to experts", cost = expert_cost per item), the model
alone, and the same policies without the model.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import pathlib
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from pilot.readers import EXPERT, PilotData, load_pilot_data
from pilot.simulation import simulate
from pilot.synthetic import synthetic_data
from routing.engine.types import PolicyConfig

CLASSES = ("a", "b", "c")
EXPERTS = (0.88, 0.90, 0.91, 0.93)
BASE = PolicyConfig(gold_check_rate=0.0)
POLICIES = {
    "default thresholds": BASE,
    "posterior >= 0.8": dataclasses.replace(BASE, consensus_min_posterior=0.8),
    "posterior >= 0.95": dataclasses.replace(BASE, consensus_min_posterior=0.95),
    "overlap 1, posterior >= 0.9": dataclasses.replace(BASE, crowd_overlap=1),
}


def scenario(n_items: int, seed: int) -> PilotData:
    rng = np.random.default_rng([seed, 0])
    return synthetic_data(
        n_items=n_items,
        judgments_per_item=5,
        accuracies=list(rng.uniform(0.55, 0.80, 50)),
        seed=seed,
        classes=CLASSES,
        expert_accuracies=EXPERTS,
        expert_judgments_per_item=2,
        model_accuracy=0.75,
    )


def write_files(data: PilotData, folder: pathlib.Path) -> dict[str, pathlib.Path]:
    paths = {name: folder / f"{name}.csv" for name in ("judgments", "gold", "predictions", "workers")}
    history = data.history
    with paths["judgments"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["item", "worker", "label"])
        for item, judgments in zip(history.items, history.judgments):
            out.writerows([item, worker, label] for worker, label in judgments)
    with paths["gold"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["item", "label"])
        out.writerows(data.gold.items())
    with paths["predictions"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["item", *history.classes])
        out.writerows([item, *probs] for item, probs in history.predictions.items())
    with paths["workers"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["worker", "role"])
        out.writerows([worker, w.role] for worker, w in history.workers.items())
    return paths


def single_expert_accuracy(data: PilotData, scored: list[str]) -> float:
    position = {item: n for n, item in enumerate(data.history.items)}
    right = []
    for item in scored:
        judgments = data.history.judgments[position[item]]
        label = next(label for worker, label in judgments if data.history.role(worker) == EXPERT)
        right.append(label == data.gold[item])
    return float(np.mean(right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=pathlib.Path, help="keep the CSV files of the first seed here")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {}
    experts, model = [], []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.out if (args.out and seed == 0) else pathlib.Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            paths = write_files(scenario(args.items, seed), folder)
            data = load_pilot_data(**paths)
            without_model = load_pilot_data(judgments=paths["judgments"], gold=paths["gold"], workers=paths["workers"])
            if seed == 0:
                print(
                    f"manage.py simulate --judgments {paths['judgments']} --gold {paths['gold']} "
                    f"--predictions {paths['predictions']} --workers {paths['workers']}"
                )
        for name, policy in POLICIES.items():
            report = simulate(data, policy, seed=seed)
            rows.setdefault(name, []).append(dict(report.adaptive))
            rows.setdefault(f"{name}, no model", []).append(dict(simulate(without_model, policy, seed=seed).adaptive))
        experts.append(single_expert_accuracy(data, list(data.gold)))
        model.append(report.baselines["model_only"]["accuracy"])
    mean = statistics.fmean
    print(f"\n{args.items} items, seeds 0..{args.seeds - 1}; expert label costs {BASE.expert_cost:g} crowd labels\n")
    print("| policy | accuracy (per seed) | labels/item | expert labels/item | auto-accepted | escalated | cost/item |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| one expert per item (everything to experts) | {mean(experts):.4f} "
        f"({', '.join(f'{x:.3f}' for x in experts)}) | 1 | 1 | 0 | 100% | {BASE.expert_cost:.2f} |"
    )
    print(f"| model alone | {mean(model):.4f} | 0 | 0 | 100% | 0 | 0 |")
    for label, figures in rows.items():
        accuracy = [f["accuracy"] for f in figures]
        print(
            f"| {label} | {mean(accuracy):.4f} ({', '.join(f'{x:.3f}' for x in accuracy)}) "
            f"| {mean(f['labels_per_item'] for f in figures):.2f} "
            f"| {mean(f['expert_labels_per_item'] for f in figures):.3f} "
            f"| {mean(f['auto_accept_rate'] for f in figures):.1%} "
            f"| {mean(f['escalation_rate'] for f in figures):.1%} "
            f"| {mean(f['cost_per_item'] for f in figures):.2f} |"
        )


if __name__ == "__main__":
    main()
