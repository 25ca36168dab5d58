"""Drift of a model's predictions: fixed-bin confidence histograms and the population stability index."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from dashboards.metrics.shaping import as_counts

# Edges of the ten confidence bins, for axis labels. Bin b holds b/10 <= confidence < (b+1)/10, the last
# bin also holds 1.0; in PostgreSQL LEAST(width_bucket(confidence, 0, 1, 10), 10) - 1 is the same bin.
CONFIDENCE_BIN_EDGES: np.ndarray = np.linspace(0.0, 1.0, 11)

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


def confidence_histogram(values: npt.ArrayLike, bins: int = 10) -> np.ndarray:
    """Counts of confidences in ``bins`` equal bins over [0, 1] (default 10, as ``CONFIDENCE_BIN_EDGES``).

    Fixed edges, not data-driven ones, so histograms from different periods line up bin for bin
    for ``population_stability_index``. A value goes to bin floor(value * bins) (1.0 to the last):
    np.histogram's float edges would put a confidence of exactly 0.3 or 0.7 one bin too low, and
    SQL's width_bucket would not, so the two sides of the dashboard would disagree.
    """
    arr = np.asarray(values, dtype=float).reshape(-1)
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"values[{i}]: confidence must be within [0, 1], got {arr[i]!r}")
    if bins < 1:
        raise ValueError(f"bins: must be at least 1, got {bins}")
    index = np.minimum(np.floor(arr * bins).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins).astype(np.int64)


def population_stability_index(
    reference_counts: npt.ArrayLike, recent_counts: npt.ArrayLike, epsilon: float = 1e-4
) -> float | None:
    """Population stability index between two histograms over the same bins (or classes).

    With shares e_b = reference_b / sum(reference) and a_b = recent_b / sum(recent)::

        PSI = sum_b (a_b - e_b) * ln(a_b / e_b)

    A share of 0 would make the log infinite, so both shares are floored at ``epsilon`` first (no
    renormalisation: with the default 1e-4 the effect is negligible). PSI is 0 for identical
    distributions, symmetric in its arguments and grows with the shift. None when either side has
    no observations.
    """
    ref = as_counts(reference_counts, name="reference_counts", ndim=1)
    rec = as_counts(recent_counts, name="recent_counts", ndim=1)
    if ref.shape != rec.shape:
        raise ValueError(f"recent_counts: {rec.size} bins do not match reference_counts' {ref.size}")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon: must be within (0, 1), got {epsilon!r}")
    if ref.sum() == 0 or rec.sum() == 0:
        return None
    e = np.maximum(ref / ref.sum(), epsilon)
    a = np.maximum(rec / rec.sum(), epsilon)
    return float(((a - e) * np.log(a / e)).sum())


def psi_level(psi: float) -> str:
    """The usual reading of PSI: "stable" below 0.1, "moderate" below 0.25, else "significant"."""
    if not (math.isfinite(psi) and psi >= 0):
        raise ValueError(f"psi: must be a non-negative number, got {psi!r}")
    if psi < PSI_MODERATE:
        return "stable"
    if psi < PSI_SIGNIFICANT:
        return "moderate"
    return "significant"
