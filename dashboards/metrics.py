"""Metrics math for the stakeholder dashboard: pure functions on compact aggregates.

Inputs are the small tables SQL can produce with GROUP BY (an items x classes count matrix, a K x K
contingency table, per-bin histograms), never lists of ORM objects. Outputs are floats, numpy arrays or
frozen dataclasses. No Django import here, so the simulator and notebooks can call the same code.

Conventions used throughout:
- A statistic that is undefined for the data given (no items, chance agreement of 1, zero denominators
  that have no meaningful limit) is returned as ``None`` so the page can show "n/a" instead of a
  misleading 0 or NaN. Per-class precision/recall/F1 are the one exception (see ``per_class_prf``).
- Malformed input (wrong shape, negative or fractional counts, NaN) raises ``ValueError`` naming the
  argument and the first offending position.
- Class order is whatever the caller uses for the columns; ``label_count_matrix``, ``contingency_table``
  and ``class_counts`` turn SQL rows keyed by label into arrays with a fixed class order.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# ---------------------------------------------------------------------------------------------------------
# Input validation and shaping (SQL rows -> arrays)
# ---------------------------------------------------------------------------------------------------------


def _as_counts(values: npt.ArrayLike, *, name: str, ndim: int) -> np.ndarray:
    """Return `values` as an int64 array of non-negative whole counts, or raise naming the first bad cell."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 and ndim == 2 and arr.ndim == 1:
        # `[]` from an empty query: zero items, so callers return None rather than fail on the shape.
        arr = arr.reshape(0, 0)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of counts, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.floor(arr))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(pos)}: counts must be finite non-negative whole numbers, got {arr[pos]!r}")
    return arr.astype(np.int64)


def _class_index(classes: Sequence[str], *, name: str) -> dict[str, int]:
    index = {label: i for i, label in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError(f"{name}: class names must be unique, got {list(classes)!r}")
    return index


def _lookup(index: Mapping[str, int], label: str, *, where: str) -> int:
    try:
        return index[label]
    except KeyError:
        raise ValueError(f"{where}: unknown class {label!r} (known: {list(index)!r})") from None


def label_count_matrix(rows: Iterable[tuple[Hashable, str, int]], classes: Sequence[str]) -> np.ndarray:
    """Build the items x classes matrix of label counts from ``(item_key, label, count)`` rows.

    This is the shape of ``SELECT item_id, label, COUNT(*) ... GROUP BY item_id, label``. Rows for the
    same (item, label) are summed. Items appear in first-seen order; items without rows are absent.
    """
    index = _class_index(classes, name="classes")
    item_rows: dict[Hashable, int] = {}
    cells: list[tuple[int, int, int]] = []
    for n, (item_key, label, count) in enumerate(rows):
        where = f"rows[{n}]"
        col = _lookup(index, label, where=where)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{where}: count must be a non-negative integer, got {count!r}")
        row = item_rows.setdefault(item_key, len(item_rows))
        cells.append((row, col, int(count)))
    matrix = np.zeros((len(item_rows), len(classes)), dtype=np.int64)
    for row, col, count in cells:
        matrix[row, col] += count
    return matrix


def contingency_table(rows: Iterable[tuple[str, str, int]], classes: Sequence[str]) -> np.ndarray:
    """Build a K x K table from ``(row_label, column_label, count)`` rows, in ``classes`` order.

    For Cohen's kappa the rows are annotator A's labels and columns annotator B's; for a confusion
    matrix rows are the true (gold) labels and columns the predicted ones.
    """
    index = _class_index(classes, name="classes")
    table = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for n, (row_label, col_label, count) in enumerate(rows):
        where = f"rows[{n}]"
        i = _lookup(index, row_label, where=where)
        j = _lookup(index, col_label, where=where)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{where}: count must be a non-negative integer, got {count!r}")
        table[i, j] += int(count)
    return table


def class_counts(counts: Mapping[str, int], classes: Sequence[str]) -> np.ndarray:
    """Counts per class as a vector in ``classes`` order (missing classes count 0), e.g. for PSI."""
    index = _class_index(classes, name="classes")
    vector = np.zeros(len(classes), dtype=np.int64)
    for label, count in counts.items():
        i = _lookup(index, label, where=f"counts[{label!r}]")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"counts[{label!r}]: count must be a non-negative integer, got {count!r}")
        vector[i] = int(count)
    return vector


# ---------------------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------------------


def percent_agreement_pairwise(counts: npt.ArrayLike) -> float | None:
    """Share of agreeing annotator pairs, pooled over items (pair-weighted).

    ``counts`` is items x K: ``counts[i, k]`` annotators gave item i class k. For an item with
    n_i = sum_k c_ik labels there are n_i(n_i-1)/2 pairs, of which sum_k c_ik(c_ik-1)/2 agree::

        agreement = sum_i sum_k c_ik(c_ik - 1) / sum_i n_i(n_i - 1)

    Items with fewer than two labels have no pairs and drop out. Pooling by pairs means an item seen
    by five annotators (10 pairs) weighs more than one seen by two (1 pair). None when no item has
    two labels.
    """
    c = _as_counts(counts, name="counts", ndim=2)
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
    t = _as_counts(table, name="table", ndim=2)
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
    c = _as_counts(counts, name="counts", ndim=2)
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


# ---------------------------------------------------------------------------------------------------------
# Proportions with uncertainty (gold accuracy)
# ---------------------------------------------------------------------------------------------------------


def _check_successes(successes: int, n: int, *, names: tuple[str, str]) -> None:
    s_name, n_name = names
    for value, name in ((successes, s_name), (n, n_name)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
    if successes > n:
        raise ValueError(f"{s_name}: {successes} is more than {n_name}={n}")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when n = 0.

    With p = successes / n::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p(1 - p) / n + z^2 / 4n^2)

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at
    p = 0 or 1, which matters for small gold sets. z = 1.96 is a 95% interval.
    """
    _check_successes(successes, n, names=("successes", "n"))
    if z <= 0:
        raise ValueError(f"z: must be positive, got {z}")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AccuracyInterval:
    """Accuracy against gold with its Wilson interval (``low``..``high``)."""

    accuracy: float
    n: int
    correct: int
    low: float
    high: float


def accuracy_with_interval(correct: int, n: int, *, z: float = 1.96) -> AccuracyInterval | None:
    """Accuracy = correct / n with a Wilson interval; None when there is no gold item (n = 0)."""
    _check_successes(correct, n, names=("correct", "n"))
    interval = wilson_interval(correct, n, z)
    if interval is None:
        return None
    return AccuracyInterval(accuracy=correct / n, n=n, correct=correct, low=interval[0], high=interval[1])


# ---------------------------------------------------------------------------------------------------------
# Time to label
# ---------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------
# Model quality
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassPRF:
    """Precision, recall and F1 of one class; ``support`` = number of items whose true label it is."""

    index: int
    label: str | None
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True)
class PRFReport:
    per_class: tuple[ClassPRF, ...]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    accuracy: float
    n: int


def per_class_prf(table: npt.ArrayLike, classes: Sequence[str] | None = None) -> PRFReport | None:
    """Per-class precision, recall, F1 and support from a K x K confusion table (rows true, columns predicted).

    For class k with tp = table[k, k]::

        precision = tp / column_sum_k    recall = tp / row_sum_k    F1 = 2 P R / (P + R)

    Zero division gives 0.0 (scikit-learn's ``zero_division=0``): a class never predicted has
    precision 0, a class never true has recall 0, and F1 is 0 when P + R = 0. Macro averages are the
    unweighted means over the classes that occur at all (as truth or prediction), matching
    scikit-learn's default label set; classes with no true and no predicted items are listed with
    zeros but left out of the macro means so an unused class does not drag them down. ``per_class``
    keeps every class, in table order, labelled from ``classes`` when given. None when the table is empty.
    """
    t = _as_counts(table, name="table", ndim=2)
    if t.shape[0] != t.shape[1]:
        raise ValueError(f"table: expected a square K x K confusion table, got shape {t.shape}")
    if classes is not None and len(classes) != t.shape[0]:
        raise ValueError(f"classes: {len(classes)} names for a {t.shape[0]} x {t.shape[0]} table")
    n = int(t.sum())
    if n == 0:
        return None
    tp = np.diag(t).astype(float)
    support = t.sum(axis=1)
    predicted = t.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support + predicted) > 0
    per_class = tuple(
        ClassPRF(
            index=k,
            label=classes[k] if classes is not None else None,
            precision=float(precision[k]),
            recall=float(recall[k]),
            f1=float(f1[k]),
            support=int(support[k]),
            predicted=int(predicted[k]),
        )
        for k in range(len(tp))
    )
    return PRFReport(
        per_class=per_class,
        macro_precision=float(precision[present].mean()),
        macro_recall=float(recall[present].mean()),
        macro_f1=float(f1[present].mean()),
        accuracy=float(tp.sum() / n),
        n=n,
    )


# ---------------------------------------------------------------------------------------------------------
# Value of escalation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationValue:
    """What escalating items to experts changed, as counts over the escalated items.

    ``with_gold`` counts escalated items that have both a gold label and a pre-escalation label;
    the accuracies and ``fixed``/``broken`` are over those. ``fixed``: the pre-escalation label was
    wrong and the expert's is right; ``broken``: the reverse. ``compared`` counts items with a
    pre-escalation label, over which ``agreed`` (pre-escalation label equals the expert's) is taken.
    """

    escalated: int
    compared: int
    agreed: int
    agreement: float | None
    with_gold: int
    pre_correct: int
    expert_correct: int
    pre_accuracy: AccuracyInterval | None
    expert_accuracy: AccuracyInterval | None
    fixed: int
    broken: int


def escalation_value(
    pre_labels: Sequence[str | None],
    expert_labels: Sequence[str],
    gold_labels: Sequence[str | None] | None = None,
) -> EscalationValue:
    """Compare, per escalated item, the label it had before escalation with the expert's final label.

    The three sequences are aligned by escalated item. ``pre_labels[i]`` is None when the item had no
    label before escalation (escalated at ingest without a prediction); ``gold_labels`` is None when
    no gold set exists, and an entry is None for an item without gold. The expert's label is the
    one the expert submitted, so ``expert_accuracy`` measures experts on exactly the items where
    ``pre_accuracy`` measures what would have been accepted without them.
    """
    n = len(expert_labels)
    if len(pre_labels) != n:
        raise ValueError(f"pre_labels: {len(pre_labels)} entries for {n} expert_labels")
    if gold_labels is not None and len(gold_labels) != n:
        raise ValueError(f"gold_labels: {len(gold_labels)} entries for {n} expert_labels")
    for i, label in enumerate(expert_labels):
        if not isinstance(label, str) or not label:
            raise ValueError(f"expert_labels[{i}]: expected a non-empty class name, got {label!r}")
    golds: Sequence[str | None] = gold_labels if gold_labels is not None else [None] * n

    compared = agreed = with_gold = pre_correct = expert_correct = fixed = broken = 0
    for pre, expert, gold in zip(pre_labels, expert_labels, golds, strict=True):
        if pre is None:
            continue
        compared += 1
        agreed += pre == expert
        if gold is None:
            continue
        with_gold += 1
        pre_ok, expert_ok = pre == gold, expert == gold
        pre_correct += pre_ok
        expert_correct += expert_ok
        fixed += expert_ok and not pre_ok
        broken += pre_ok and not expert_ok
    return EscalationValue(
        escalated=n,
        compared=compared,
        agreed=agreed,
        agreement=agreed / compared if compared else None,
        with_gold=with_gold,
        pre_correct=pre_correct,
        expert_correct=expert_correct,
        pre_accuracy=accuracy_with_interval(pre_correct, with_gold),
        expert_accuracy=accuracy_with_interval(expert_correct, with_gold),
        fixed=fixed,
        broken=broken,
    )


def cost_per_correct(cost_total: float, correct: int) -> float | None:
    """Cost divided by the number of correct labels it bought; None when nothing was correct."""
    if not (math.isfinite(cost_total) and cost_total >= 0):
        raise ValueError(f"cost_total: must be a non-negative number, got {cost_total!r}")
    if isinstance(correct, bool) or not isinstance(correct, (int, np.integer)) or correct < 0:
        raise ValueError(f"correct: must be a non-negative integer, got {correct!r}")
    if correct == 0:
        return None
    return cost_total / correct


# ---------------------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------------------

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
    ref = _as_counts(reference_counts, name="reference_counts", ndim=1)
    rec = _as_counts(recent_counts, name="recent_counts", ndim=1)
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


# ---------------------------------------------------------------------------------------------------------
# Effort
# ---------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------
# Additive agreement statistics (for pre-computed snapshots)
# ---------------------------------------------------------------------------------------------------------


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
    c = _as_counts(counts, name="counts", ndim=2)
    if c.size and c.shape[1] != len(classes):
        raise ValueError(f"classes: {len(classes)} names for {c.shape[1]} count columns")
    _class_index(classes, name="classes")
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
    """Krippendorff's alpha (nominal) of the items summed into ``stats`` (items with two labels or more).

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


# ---------------------------------------------------------------------------------------------------------
# Duration histograms (quantiles of pre-computed snapshots)
# ---------------------------------------------------------------------------------------------------------

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
            dense[b] += _as_counts([value], name=f"counts[{key!r}]", ndim=1)[0]
    else:
        given = _as_counts(counts, name="counts", ndim=1)
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
