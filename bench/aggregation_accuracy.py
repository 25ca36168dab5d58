"""Accuracy of the engine's aggregation on the real data sets in shared/data (see its README).

Usage: .venv/bin/python bench/aggregation_accuracy.py [DATA_DIR]
Prints, per data set: majority vote, batch Dawid-Skene, and the online learner replaying judgments in
their published order and shuffled per item (seeded), against the README's reference figures.
"""

from __future__ import annotations

import csv
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.engine.aggregation import posterior
from routing.engine.reliability import OnlineReliability, dawid_skene, majority_posteriors

REFERENCE = {"snow-rte": (0.897, 0.928), "barzan-mozafari": (0.696, 0.709)}


def load(folder: pathlib.Path):
    with open(folder / "judgments.csv") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "gold.csv") as f:
        gold_rows = list(csv.DictReader(f))
    items = {item: i for i, item in enumerate(dict.fromkeys(r["item"] for r in rows))}
    workers = {w: i for i, w in enumerate(dict.fromkeys(r["worker"] for r in rows))}
    classes = sorted({r["label"] for r in rows} | {r["label"] for r in gold_rows})
    cls = {c: i for i, c in enumerate(classes)}
    labels = np.array([(items[r["item"]], workers[r["worker"]], cls[r["label"]]) for r in rows])
    truth = np.full(len(items), -1)
    for r in gold_rows:
        if r["item"] in items:
            truth[items[r["item"]]] = cls[r["label"]]
    return classes, labels, len(items), len(workers), truth


def expected_accuracy(post: np.ndarray, truth: np.ndarray) -> float:
    """Ties count as a fair coin among the tied classes, as in the README."""
    mask = truth >= 0
    top = post[mask].max(axis=1, keepdims=True)
    tied = np.isclose(post[mask], top)
    return float(np.mean(tied[np.arange(mask.sum()), truth[mask]] / tied.sum(axis=1)))


def shuffled(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(labels)), labels[:, 0]))
    # Keep items in first-seen order, judgments within each item shuffled.
    first_seen = {int(i): n for n, i in reversed(list(enumerate(labels[:, 0])))}
    order = sorted(order, key=lambda j: first_seen[int(labels[j, 0])])
    return labels[np.array(order)]


def online(classes, labels, n_items, truth):
    """Replay judgments one by one.

    Returns (accuracy under the learner's final matrices, accuracy of each item's posterior at the moment
    its last label arrived, as live routing would have seen it, µs per update).
    """
    k = len(classes)
    learner = OnlineReliability(k)
    votes: dict[int, list] = {}
    last_seen = {int(item): n for n, item in enumerate(labels[:, 0])}
    at_the_time = np.full((n_items, k), 1.0 / k)
    elapsed = 0.0
    for n, (item, worker, given) in enumerate(labels.tolist()):
        votes.setdefault(item, []).append((worker, "crowd", given))
        start = time.perf_counter()
        learner.observe_item(item, votes[item], model_probs=None, model_weight=0.0)
        elapsed += time.perf_counter() - start
        if last_seen[item] == n:
            at_the_time[item] = posterior(
                None, [g for _, _, g in votes[item]], [learner.confusion(w) for w, _, _ in votes[item]], k=k
            )
    final = np.array(
        [
            posterior(
                None, [g for _, _, g in votes.get(i, [])], [learner.confusion(w) for w, _, _ in votes.get(i, [])], k=k
            )
            for i in range(n_items)
        ]
    )
    return expected_accuracy(final, truth), expected_accuracy(at_the_time, truth), elapsed / len(labels) * 1e6


def main(data_dir: pathlib.Path) -> None:
    for name in ("snow-rte", "barzan-mozafari"):
        classes, labels, n_items, n_workers, truth = load(data_dir / name)
        mv = expected_accuracy(majority_posteriors(labels[:, 0], labels[:, 2], n_items, len(classes)), truth)
        start = time.perf_counter()
        post, _ = dawid_skene(classes, labels, n_items, n_workers)
        ds_seconds = time.perf_counter() - start
        ds = expected_accuracy(post, truth)
        on_pub, live_pub, us = online(classes, labels, n_items, truth)
        on_shuf, live_shuf, _ = online(classes, shuffled(labels, 0), n_items, truth)
        ref_mv, ref_ds = REFERENCE[name]
        print(
            f"{name}: majority {mv:.3f} (ref {ref_mv}), "
            f"dawid_skene {ds:.3f} (ref {ref_ds}, {ds_seconds * 1000:.0f} ms); "
            f"online final/at-the-time: published order {on_pub:.3f}/{live_pub:.3f}, "
            f"shuffled {on_shuf:.3f}/{live_shuf:.3f} ({us:.0f} µs per update)"
        )


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
