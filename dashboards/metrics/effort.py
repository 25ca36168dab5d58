"""Effort: difficulty-weighted work units."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorkUnitWeights:
    """Weights for ``work_units``.

    Every item costs ``per_item``. On top of that an escalated item costs ``extra_per_escalated``:
    it needed an expert, whose time is scarcer and who usually reads the crowd's labels and
    rationales first, so by default it counts three units in all. An item with crowd disagreement
    costs ``extra_per_disagreement``: it drew extra crowd labels beyond the first overlap, roughly
    doubling its crowd effort, so it counts two units. An item that was both counts four.
    """

    per_item: float = 1.0
    extra_per_escalated: float = 2.0
    extra_per_disagreement: float = 1.0


DEFAULT_WORK_UNIT_WEIGHTS = WorkUnitWeights()


def work_units(
    n_items: int,
    n_escalated: int,
    n_disagreement: int,
    weights: WorkUnitWeights = DEFAULT_WORK_UNIT_WEIGHTS,
) -> float:
    """Difficulty-weighted effort::

        units = per_item * n_items + extra_per_escalated * n_escalated + extra_per_disagreement * n_disagreement

    ``n_escalated`` and ``n_disagreement`` count items among the ``n_items`` (an item may be in both).
    """
    for value, name in ((n_items, "n_items"), (n_escalated, "n_escalated"), (n_disagreement, "n_disagreement")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    if n_escalated > n_items:
        raise ValueError(f"n_escalated: {n_escalated} is more than n_items={n_items}")
    if n_disagreement > n_items:
        raise ValueError(f"n_disagreement: {n_disagreement} is more than n_items={n_items}")
    for name in ("per_item", "extra_per_escalated", "extra_per_disagreement"):
        w = getattr(weights, name)
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weights.{name}: must be a non-negative number, got {w!r}")
    return float(
        weights.per_item * n_items
        + weights.extra_per_escalated * n_escalated
        + weights.extra_per_disagreement * n_disagreement
    )
