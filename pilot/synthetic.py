"""Synthetic pilot data with known annotator accuracies (tests, bench, demos)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pilot.readers import (
    CROWD,
    EXPERT,
    History,
    PilotData,
    Worker,
)

# ---------------------------------------------------------------------------------------------------------
# Synthetic data with known annotator accuracies (tests, bench, demos)


def synthetic_data(
    *,
    n_items: int,
    judgments_per_item: int,
    accuracies: Sequence[float],
    seed: int,
    classes: Sequence[str] = ("neg", "pos"),
    expert_accuracies: Sequence[float] = (),
    expert_judgments_per_item: int = 0,
    model_accuracy: float | None = None,
) -> PilotData:
    """Items with a uniformly drawn true class, each labelled by `judgments_per_item` distinct crowd
    workers drawn at random (worker w is right with probability `accuracies[w]`, otherwise names a
    uniformly drawn wrong class), then by `expert_judgments_per_item` experts alike.

    With `model_accuracy`, a prediction whose top class is right with that probability and whose top
    probability is drawn from [0.5, 1) higher when right (so it carries some signal).
    """
    rng = np.random.default_rng(seed)
    classes = tuple(classes)
    k = len(classes)
    if judgments_per_item > len(accuracies) or expert_judgments_per_item > len(expert_accuracies):
        raise ValueError("more judgments per item than workers")
    truth = rng.integers(k, size=n_items)
    crowd = [f"c{w}" for w in range(len(accuracies))]
    experts = [f"e{w}" for w in range(len(expert_accuracies))]

    def labels(true: np.ndarray, acc: np.ndarray) -> np.ndarray:
        right = rng.random(true.shape) < acc
        wrong = (true + rng.integers(1, k, size=true.shape)) % k
        return np.where(right, true, wrong)

    items = tuple(f"i{n}" for n in range(n_items))
    chosen = np.argsort(rng.random((n_items, len(accuracies))), axis=1)[:, :judgments_per_item]
    given = labels(np.repeat(truth[:, None], judgments_per_item, axis=1), np.asarray(accuracies)[chosen])
    judgments = [[(crowd[w], classes[g]) for w, g in zip(ws, gs)] for ws, gs in zip(chosen, given)]
    if expert_judgments_per_item:
        chosen_e = np.argsort(rng.random((n_items, len(expert_accuracies))), axis=1)[:, :expert_judgments_per_item]
        given_e = labels(
            np.repeat(truth[:, None], expert_judgments_per_item, axis=1), np.asarray(expert_accuracies)[chosen_e]
        )
        for js, ws, gs in zip(judgments, chosen_e, given_e):
            js.extend((experts[w], classes[g]) for w, g in zip(ws, gs))
    predictions: dict[str, tuple[float, ...]] = {}
    if model_accuracy is not None:
        right = rng.random(n_items) < model_accuracy
        top_class = np.where(right, truth, (truth + rng.integers(1, k, size=n_items)) % k)
        top_p = np.where(right, 0.75 + 0.25 * rng.random(n_items), 0.5 + 0.3 * rng.random(n_items))
        for n in range(n_items):
            probs = np.full(k, (1.0 - top_p[n]) / (k - 1))
            probs[top_class[n]] = top_p[n]
            predictions[items[n]] = tuple(float(p) for p in probs)
    workers = {w: Worker(role=CROWD) for w in crowd} | {w: Worker(role=EXPERT) for w in experts}
    history = History(
        classes=classes,
        items=items,
        judgments=tuple(tuple(js) for js in judgments),
        workers=workers,
        predictions=predictions,
    )
    return PilotData(history=history, gold={items[n]: classes[truth[n]] for n in range(n_items)})
