"""Agreement between annotators: pairwise agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha, from
count matrices, and the additive sums (``AgreementStats``) that snapshots store so any union of cells gets
exact coefficients."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dashboards.metrics.shaping import as_counts, class_index


def percent_agreement_pairwise(counts: npt.ArrayLike) -> float | None:
    """Share of agreeing annotator pairs, pooled over items (pair-weighted).

    ``counts`` is items x K: ``counts[i, k]`` annotators gave item i class k. For an item with
    n_i = sum_k c_ik labels there are n_i(n_i-1)/2 pairs, of which sum_k c_ik(c_ik-1)/2 agree::

        agreement = sum_i sum_k c_ik(c_ik - 1) / sum_i n_i(n_i - 1)

    Items with fewer than two labels have no pairs and drop out. Pooling by pairs means an item seen
    by five annotators (10 pairs) weighs more than one seen by two (1 pair). None when no item has
    two labels.
    """
    c = as_counts(counts, name="counts", ndim=2)
    n = c.sum(axis=1)
    total_pairs = int((n * (n - 1)).sum())
    if total_pairs == 0:
        return None
    return float((c * (c - 1)).sum() / total_pairs)


def cohen_kappa(table: npt.ArrayLike, *, min_items: int = 10) -> float | None:
    """Cohen's kappa for two annotators from their K x K contingency table of shared items.

    ``table[a, b]`` counts items annotator A labelled a and annotator B labelled b. With N items,
    p_o = trace / N and p_e = sum_k (row_k / N)(col_k / N)::

        kappa = (p_o - p_e) / (1 - p_e)

    Returns None when fewer than ``min_items`` shared items (kappa on a handful of items is noise;
    default 10) or when p_e = 1, i.e. both annotators used one and the same class for every item:
    kappa is 0/0 there, and percent agreement is the number to show instead.
    """
    t = as_counts(table, name="table", ndim=2)
    if t.shape[0] != t.shape[1]:
        raise ValueError(f"table: expected a square K x K table, got shape {t.shape}")
    if min_items < 1:
        raise ValueError(f"min_items: must be at least 1, got {min_items}")
    n = int(t.sum())
    if n < min_items:
        return None
    p_o = np.trace(t) / n
    p_e = float((t.sum(axis=1) * t.sum(axis=0)).sum()) / (n * n)
    if math.isclose(p_e, 1.0):
        return None
    return float((p_o - p_e) / (1.0 - p_e))


def fleiss_kappa(counts: npt.ArrayLike) -> float | None:
    """Fleiss' kappa for many annotators from the items x K count matrix.

    Standard Fleiss (1971) assumes every item has the same number n of ratings. Ours often do not
    (crowd overlap grows on hard items), so this is the usual generalisation to varying n_i, which
    is exactly the standard statistic when all n_i are equal:

        P_i   = sum_k c_ik(c_ik - 1) / (n_i(n_i - 1))     agreement on item i
        P_bar = mean_i P_i                                 each item weighs the same
        p_k   = sum_i c_ik / sum_i n_i                     class shares over all ratings
        P_e   = sum_k p_k^2
        kappa = (P_bar - P_e) / (1 - P_e)

    Items with fewer than two ratings carry no agreement information and are dropped before
    anything is computed (so they do not affect p_k either). With varying n_i, Krippendorff's alpha
    (``krippendorff_alpha_from_stats``) is the better-founded statistic; this one is kept because
    stakeholders know it. None when no item has two ratings or when P_e = 1 (one class used
    throughout: kappa is 0/0).
    """
    c = as_counts(counts, name="counts", ndim=2)
    n = c.sum(axis=1)
    keep = n >= 2
    c, n = c[keep], n[keep]
    if len(n) == 0:
        return None
    p_item = (c * (c - 1)).sum(axis=1) / (n * (n - 1))
    p_bar = float(p_item.mean())
    p_k = c.sum(axis=0) / n.sum()
    p_e = float((p_k * p_k).sum())
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1.0 - p_e)


@dataclass(frozen=True)
class AgreementStats:
    """Sums from which the three agreement coefficients follow exactly, and which add across item sets.

    Over the items with at least two labels (n_i labels, c_ik of them class k)::

        items = number of such items          labels = sum_i n_i
        pairs = sum_i n_i(n_i - 1)             agreeing = sum_i sum_k c_ik(c_ik - 1)
        item_agreement_sum = sum_i P_i         (P_i as in ``fleiss_kappa``)
        disagreement_sum = sum_i (n_i^2 - sum_k c_ik^2) / (n_i - 1)
        class_totals[k] = sum_i c_ik

    A snapshot stores these per day, domain and route; any union of those cells is the sum of its cells,
    so the dashboard gets exact coefficients for any filter without revisiting the annotations.
    """

    items: int = 0
    labels: int = 0
    pairs: int = 0
    agreeing: int = 0
    item_agreement_sum: float = 0.0
    disagreement_sum: float = 0.0
    class_totals: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: AgreementStats) -> AgreementStats:
        totals = dict(self.class_totals)
        for label, count in other.class_totals.items():
            totals[label] = totals.get(label, 0) + count
        return AgreementStats(
            items=self.items + other.items,
            labels=self.labels + other.labels,
            pairs=self.pairs + other.pairs,
            agreeing=self.agreeing + other.agreeing,
            item_agreement_sum=self.item_agreement_sum + other.item_agreement_sum,
            disagreement_sum=self.disagreement_sum + other.disagreement_sum,
            class_totals=totals,
        )


def agreement_stats(counts: npt.ArrayLike, classes: Sequence[str]) -> AgreementStats:
    """The additive sums of an items x K count matrix whose columns are ``classes``."""
    c = as_counts(counts, name="counts", ndim=2)
    if c.size and c.shape[1] != len(classes):
        raise ValueError(f"classes: {len(classes)} names for {c.shape[1]} count columns")
    class_index(classes, name="classes")
    n = c.sum(axis=1) if c.size else np.zeros(0, dtype=np.int64)
    keep = n >= 2
    c, n = c[keep], n[keep]
    if len(n) == 0:
        return AgreementStats()
    agreeing_per_item = (c * (c - 1)).sum(axis=1)
    squares = (c * c).sum(axis=1)
    totals = c.sum(axis=0)
    return AgreementStats(
        items=len(n),
        labels=int(n.sum()),
        pairs=int((n * (n - 1)).sum()),
        agreeing=int(agreeing_per_item.sum()),
        item_agreement_sum=float((agreeing_per_item / (n * (n - 1))).sum()),
        disagreement_sum=float(((n * n - squares) / (n - 1)).sum()),
        class_totals={label: int(t) for label, t in zip(classes, totals, strict=True) if t},
    )


def percent_agreement_from_stats(stats: AgreementStats) -> float | None:
    """``percent_agreement_pairwise`` of the items summed into ``stats``."""
    return stats.agreeing / stats.pairs if stats.pairs else None


def fleiss_kappa_from_stats(stats: AgreementStats) -> float | None:
    """``fleiss_kappa`` of the items summed into ``stats`` (same generalisation to varying n_i)."""
    if stats.items == 0 or stats.labels == 0:
        return None
    p_bar = stats.item_agreement_sum / stats.items
    p_e = sum((t / stats.labels) ** 2 for t in stats.class_totals.values())
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha_from_stats(stats: AgreementStats) -> float | None:
    """Krippendorff's alpha (nominal) of the items summed into ``stats`` (the tests check it against the
    `krippendorff` package).

    With n pairable values and class totals n_k, alpha = 1 - (n - 1) * disagreement_sum / (n^2 - sum_k n_k^2)
    (observed over expected disagreement, Krippendorff 2011, written with the coincidence sums). None
    when no item has two labels or all of them fall in one class.
    """
    used = [t for t in stats.class_totals.values() if t]
    if stats.items == 0 or len(used) < 2:
        return None
    n = stats.labels
    expected = n * n - sum(t * t for t in used)
    return 1.0 - (n - 1) * stats.disagreement_sum / expected
