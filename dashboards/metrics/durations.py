"""Time to label: quantiles of durations, SLA compliance, and the log-binned duration histograms snapshots
store (quantiles from them are within one bin, about 10%, of the exact ones)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dashboards.metrics.shaping import as_counts


def _as_durations(values: npt.ArrayLike, *, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}]: durations must be finite and non-negative, got {arr[i]!r}")
    return arr


def quantiles(values_seconds: npt.ArrayLike, qs: Sequence[float] = (0.5, 0.9)) -> dict[float, float] | None:
    """Quantiles of durations, ``{q: value}``; None when there are no values.

    Uses numpy's default linear interpolation, the same definition as PostgreSQL's
    ``percentile_cont``, so a later move of this into SQL gives the same figures.
    """
    arr = _as_durations(values_seconds, name="values_seconds")
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"qs: quantiles must be within [0, 1], got {q!r}")
    if arr.size == 0:
        return None
    return {float(q): float(v) for q, v in zip(qs, np.quantile(arr, list(qs)), strict=True)}


@dataclass(frozen=True)
class SlaCompliance:
    """How many durations met the SLA (``duration <= sla_hours``)."""

    n: int
    within_sla: int
    share: float


def sla_compliance(durations_hours: npt.ArrayLike, sla_hours: float) -> SlaCompliance | None:
    """Share of durations at or under ``sla_hours`` (on the boundary counts as met); None when empty."""
    arr = _as_durations(durations_hours, name="durations_hours")
    if not (math.isfinite(sla_hours) and sla_hours > 0):
        raise ValueError(f"sla_hours: must be a positive number, got {sla_hours!r}")
    if arr.size == 0:
        return None
    within = int((arr <= sla_hours).sum())
    return SlaCompliance(n=int(arr.size), within_sla=within, share=within / arr.size)

DURATION_BINS_PER_DECADE = 24
DURATION_DECADES = 8  # 1 s to 10^8 s (about three years)
# Bin 0 holds [0, 1) s; bin b >= 1 holds [10^((b-1)/24), 10^(b/24)) s; the last bin also holds anything longer.
DURATION_BIN_EDGES: np.ndarray = np.concatenate(
    ([0.0], np.logspace(0, DURATION_DECADES, DURATION_BINS_PER_DECADE * DURATION_DECADES + 1))
)
DURATION_BINS = len(DURATION_BIN_EDGES) - 1


def duration_bins(seconds: npt.ArrayLike) -> np.ndarray:
    """Bin index of each duration in ``DURATION_BIN_EDGES`` (log bins, about 10% wide)."""
    arr = _as_durations(seconds, name="seconds")
    index = np.zeros(arr.shape, dtype=np.int64)
    positive = arr >= 1.0
    # The tiny epsilon keeps exact powers of ten (10^(b/24) computed in floating point) in their own bin.
    index[positive] = 1 + np.floor(np.log10(arr[positive]) * DURATION_BINS_PER_DECADE + 1e-9).astype(np.int64)
    return np.minimum(index, DURATION_BINS - 1)


def histogram_quantiles(
    counts: Mapping[int, int] | npt.ArrayLike, qs: Sequence[float] = (0.5, 0.9)
) -> dict[float, float] | None:
    """Approximate quantiles of durations from their ``duration_bins`` histogram.

    ``counts`` is a dense vector over the bins or a sparse ``{bin: count}`` mapping. The c values of a
    bin are taken to sit evenly inside it (geometrically; linearly in bin 0), the j-th at fraction
    (j + 0.5) / c, and the quantile is then numpy's linear one over those values (rank q * (N - 1)), as
    ``quantiles`` computes on exact durations. Each stand-in value is within one bin (a factor
    10^(1/24), about 10%) of the value it replaces, so the quantile is too. None when empty.
    """
    dense = np.zeros(DURATION_BINS, dtype=np.int64)
    if isinstance(counts, Mapping):
        for key, value in counts.items():
            b = int(key)
            if not 0 <= b < DURATION_BINS:
                raise ValueError(f"counts[{key!r}]: bin must be within 0..{DURATION_BINS - 1}")
            dense[b] += as_counts([value], name=f"counts[{key!r}]", ndim=1)[0]
    else:
        given = as_counts(counts, name="counts", ndim=1)
        if given.size != DURATION_BINS:
            raise ValueError(f"counts: expected {DURATION_BINS} bins, got {given.size}")
        dense = given
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"qs: quantiles must be within [0, 1], got {q!r}")
    total = int(dense.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(dense)

    def value_at(rank: int) -> float:
        b = int(np.searchsorted(cumulative, rank, side="right"))
        j = rank - (int(cumulative[b - 1]) if b > 0 else 0)
        fraction = (j + 0.5) / int(dense[b])
        low, high = DURATION_BIN_EDGES[b], DURATION_BIN_EDGES[b + 1]
        return float(low + fraction * (high - low) if low == 0 else low * (high / low) ** fraction)

    result = {}
    for q in qs:
        rank = q * (total - 1)
        below, above = math.floor(rank), math.ceil(rank)
        low_value = value_at(below)
        result[float(q)] = low_value + (rank - below) * (value_at(above) - low_value)
    return result
