"""Accuracy with uncertainty (Wilson intervals), a model's per-class precision/recall/F1, the value of
escalating to experts and the cost of a correct label."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dashboards.metrics.shaping import as_counts


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
    t = as_counts(table, name="table", ndim=2)
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
