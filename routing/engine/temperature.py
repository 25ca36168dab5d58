"""The model's temperature: how much to soften (T > 1) or sharpen (T < 1) its probabilities so they say
what its labels turn out to be worth on this project (temperature scaling, Guo et al. 2017).

A real model is rarely calibrated: naive Bayes calls 99 % what is right 87 % of the time, a strongly
regularised one says 70 % where it is nearly always right. Routing that trusts the raw numbers
auto-accepts the first kind's mistakes and pays the crowd to confirm the second kind. The reliability
refresh fits T on the project's own evidence, each item's human labels read through their annotators'
learned confusions (or its gold label), and routing applies p_T(c) ∝ p(c)^(1/T) before any signal or
prior reads the prediction. Pure: plain arrays in, a float out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .aggregation import labels_log_likelihood

# Fewer items with both a prediction and human evidence than this: no temperature (the model as it is).
MIN_ITEMS = 20
# log T is searched in [-LOG_BOUND, LOG_BOUND]: T from 1/20 to 20.
LOG_BOUND = math.log(20.0)
# A weak pull of log T towards 0, worth this many items: a handful of items cannot swing T far.
PRIOR_ITEMS = 2.0
TEMPERATURE_DIGITS = 3
PROBABILITY_FLOOR = 1e-6


def tempered(probs: Sequence[float], temperature: float) -> tuple[float, ...]:
    """p(c)^(1/T), renormalised; T = 1 leaves the vector as it is."""
    if temperature == 1.0:
        return tuple(probs)
    logs = [math.log(max(p, PROBABILITY_FLOOR)) / temperature for p in probs]
    top = max(logs)
    weights = [math.exp(v - top) for v in logs]
    total = math.fsum(weights)
    return tuple(w / total for w in weights)


def fit_temperature(probs: np.ndarray, evidence: np.ndarray) -> float | None:
    """The T maximising Σ_i log Σ_c p_T(i, c) · evidence(i, c), or None with fewer than MIN_ITEMS items.

    probs: (n, k) model probabilities. evidence: (n, k) likelihood of each item's human labels under
    each true class (any positive scale per row; a gold item is one-hot): the labels' marginal likelihood
    under the tempered model, so an item whose labels say nothing (a flat row) pulls T nowhere, where
    hard targets would have pulled it towards a flat model.
    """
    probs = np.asarray(probs, dtype=float)
    evidence = np.asarray(evidence, dtype=float)
    if probs.ndim != 2 or probs.shape != evidence.shape:
        raise ValueError(f"probs {probs.shape} and evidence {evidence.shape} must be (n, k) alike")
    informative = evidence.max(axis=1) > evidence.min(axis=1)
    if int(informative.sum()) < MIN_ITEMS:
        return None
    logs = np.log(np.maximum(probs[informative], PROBABILITY_FLOOR))
    logs -= logs.max(axis=1, keepdims=True)
    weights = evidence[informative] / evidence[informative].sum(axis=1, keepdims=True)

    def loss(log_t: float) -> float:
        scaled = logs / math.exp(log_t)
        p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float(-np.log(np.maximum((p * weights).sum(axis=1), 1e-300)).sum()) + PRIOR_ITEMS * log_t**2

    grid = np.linspace(-LOG_BOUND, LOG_BOUND, 41)
    values = [loss(x) for x in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    # Golden-section search inside the best grid cell's neighbours.
    ratio = (math.sqrt(5) - 1) / 2
    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(40):
        if fa < fb:
            high, b, fb = b, a, fa
            a = low + (1 - ratio) * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return round(math.exp((low + high) / 2), TEMPERATURE_DIGITS)


def label_evidence(
    rows: np.ndarray, confusions: np.ndarray, n_items: int, truth: dict[int, int], floor: float = 1e-9
) -> np.ndarray:
    """(n_items, k): each item's labels' likelihood under each true class, Π_j C_{a_j}[t, g_j], scaled to
    a row maximum of 1 (flat for an item without labels); a gold item's row is its truth, one-hot.

    rows: (item, annotator, class) index triples; confusions: (annotators, k, k)."""
    log_l = labels_log_likelihood(rows, np.log(np.maximum(confusions, floor)), n_items)
    evidence: np.ndarray = np.exp(log_l - log_l.max(axis=1, keepdims=True))
    for item, true in truth.items():
        evidence[item] = 0.0
        evidence[item, true] = 1.0
    return evidence


# Items the model's label was accepted for are routed again only when T moves by more than this factor:
# refreshing every model-labeled item for a change in the third decimal would cost more than it finds.
MATERIAL_FACTOR = 1.05


def temperature_changed(before: float | None, after: float | None) -> bool:
    """Whether routing should look again at the model's accepted labels after T went from before to after."""
    if after is None:
        return False
    if before is None:
        return after != 1.0
    return max(after / before, before / after) > MATERIAL_FACTOR
