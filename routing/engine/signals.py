"""Uncertainty and agreement signals for one item: plain numbers the policy compares with thresholds.

Every signal is a small pure function of plain values; `compute_signals` applies them to an item.
A signal that cannot be computed (no prediction, no annotation) is None, and a None never fires a
trigger. Floats are rounded to SIGNAL_DIGITS decimals so that a threshold written as 0.20 compares as
the admin means it with a margin computed as 0.6 - 0.4 (0.19999999999999996 in binary floating point).
See docs/routing.md for the formulas.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import aggregation
from .rules import fired_rules, resolve
from .temperature import tempered
from .types import AnnotationInput, AnnotatorReliability, FeatureRule, ItemInput, PolicyConfig, PredictionInput

SIGNAL_DIGITS = 12

SIGNAL_NAMES = (
    "top_probability",
    "margin",
    "entropy",
    "model_disagreement",
    "model_tv_distance",
    "annotation_count",
    "crowd_count",
    "expert_count",
    "agreement",
    "distinct_labels",
    "consensus_gap",
    "posterior_confidence",
    "metadata_conflict",
    "feature_rules_fired",
)


def check_item(item: ItemInput) -> None:
    """Raise ValueError naming the offending prediction or annotation if the item is inconsistent."""
    if not item.classes:
        raise ValueError(f"item {item.item_id}: no classes")
    if len(set(item.classes)) != len(item.classes):
        raise ValueError(f"item {item.item_id}: duplicate class names in {list(item.classes)}")
    known = set(item.classes)
    if item.model_temperature is not None and not (
        isinstance(item.model_temperature, (int, float)) and 0 < item.model_temperature < math.inf
    ):
        raise ValueError(f"item {item.item_id}: model_temperature must be a positive number")
    if item.class_prior:
        prior = item.class_prior
        if len(prior) != len(item.classes):
            raise ValueError(
                f"item {item.item_id}: class_prior has {len(prior)} values for {len(item.classes)} classes")
        if any(not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0 for p in prior) or sum(prior) <= 0:
            raise ValueError(f"item {item.item_id}: class_prior must be finite numbers >= 0 with a positive sum")
    for prediction in item.predictions:
        unknown = set(prediction.probabilities) - known
        if unknown:
            raise ValueError(
                f"item {item.item_id}, prediction {prediction.id}: unknown classes {sorted(map(str, unknown))}"
            )
        values = list(prediction.probabilities.values())
        if any(not isinstance(p, (int, float)) or isinstance(p, bool) or not math.isfinite(p) or p < 0 for p in values):
            raise ValueError(
                f"item {item.item_id}, prediction {prediction.id}: probabilities must be finite numbers ≥ 0"
            )
        if sum(values) <= 0:
            raise ValueError(f"item {item.item_id}, prediction {prediction.id}: probabilities sum to 0")
    for annotation in item.annotations:
        if annotation.label not in known:
            raise ValueError(
                f"item {item.item_id}, annotation {annotation.id}: label {annotation.label!r} is not a class"
            )


def probability_vector(prediction: PredictionInput, classes: Sequence[str]) -> tuple[float, ...]:
    """Probabilities in `classes` order, missing classes 0, renormalised to sum 1."""
    values = [float(prediction.probabilities.get(name, 0.0)) for name in classes]
    total = math.fsum(values)
    return tuple(v / total for v in values)


def top_index(probs: Sequence[float]) -> int:
    """Index of the largest probability; ties go to the class listed first."""
    return max(range(len(probs)), key=lambda i: (probs[i], -i))


def top_probability(probs: Sequence[float]) -> float:
    return max(probs)


def margin(probs: Sequence[float]) -> float:
    """Top-1 minus top-2 probability (the top probability itself when there is one class)."""
    ordered = sorted(probs, reverse=True)
    return ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0)


def normalised_entropy(probs: Sequence[float]) -> float:
    """Shannon entropy divided by log(K): 0 for a certain prediction, 1 for a uniform one."""
    if len(probs) < 2:
        return 0.0
    h = -math.fsum(p * math.log(p) for p in probs if p > 0)
    return max(0.0, h / math.log(len(probs)))


def model_disagreement(top_labels: Sequence[str]) -> float | None:
    """Share of earlier model versions whose top label differs from the latest's (the last element)."""
    if len(top_labels) < 2:
        return None
    latest = top_labels[-1]
    return sum(label != latest for label in top_labels[:-1]) / (len(top_labels) - 1)


def model_tv_distance(vectors: Sequence[Sequence[float]]) -> float | None:
    """Mean total-variation distance (½ Σ|p - q|) between the latest vector (last) and each earlier one."""
    if len(vectors) < 2:
        return None
    latest = vectors[-1]
    distances = [0.5 * math.fsum(abs(p - q) for p, q in zip(latest, other)) for other in vectors[:-1]]
    return math.fsum(distances) / len(distances)


def label_counts(labels: Sequence[str]) -> list[tuple[str, int]]:
    """(label, count), most frequent first; ties in first-given order."""
    return Counter(labels).most_common()


def agreement(labels: Sequence[str]) -> float | None:
    """Share of labels equal to the most frequent label."""
    return _agreement(label_counts(labels), len(labels))


def consensus_gap(labels: Sequence[str]) -> float | None:
    """Share of the most frequent label minus share of the second (1.0 when all agree)."""
    return _consensus_gap(label_counts(labels), len(labels))


def _agreement(counts: list[tuple[str, int]], n: int) -> float | None:
    return counts[0][1] / n if n else None


def _consensus_gap(counts: list[tuple[str, int]], n: int) -> float | None:
    if not n:
        return None
    second = counts[1][1] if len(counts) > 1 else 0
    return (counts[0][1] - second) / n


def metadata_conflict_value(
    metadata: Mapping[str, Any], field: str, classes: Sequence[str], predicted: str | None
) -> float | None:
    """1.0 when metadata[field] is a class name other than the predicted label, else 0.0.

    `field` is a dotted path inside metadata, with or without a leading "metadata.". None when a field
    is configured but there is no prediction to contradict.
    """
    if not field:
        return 0.0
    if predicted is None:
        return None
    value = metadata_field_value(metadata, field)
    return 1.0 if isinstance(value, str) and value in classes and value != predicted else 0.0


def metadata_path(field: str) -> str:
    return field if field.startswith("metadata.") else f"metadata.{field}"


def metadata_field_value(metadata: Mapping[str, Any], field: str) -> object:
    return resolve({"metadata": metadata}, metadata_path(field))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, SIGNAL_DIGITS)


@dataclass(frozen=True)
class Analysis:
    """What the policy needs besides the signals; internal to the engine."""

    signals: dict[str, float | None]
    probs: tuple[float, ...] | None  # latest prediction, in class order
    predicted: str | None  # its top label
    posterior: tuple[float, ...] | None  # model prior + every annotation
    fired: tuple[FeatureRule, ...]
    label_counts: list[tuple[str, int]]  # over every annotation, most frequent first


def analyse(item: ItemInput, policy: PolicyConfig, reliabilities: Mapping[int, AnnotatorReliability]) -> Analysis:
    check_item(item)
    classes = item.classes
    vectors = [probability_vector(p, classes) for p in item.predictions]
    if item.model_temperature is not None:
        vectors = [tempered(v, item.model_temperature) for v in vectors]
    probs = vectors[-1] if vectors else None
    predicted = classes[top_index(probs)] if probs is not None else None
    labels = [a.label for a in item.annotations]
    counts = label_counts(labels)
    crowd = sum(a.role not in aggregation.EXPERT_ROLES for a in item.annotations)
    post = None
    if probs is not None or item.annotations:
        post = aggregation.item_posterior(item, probs, item.annotations, policy, reliabilities)
    fired = fired_rules(policy.feature_rules, item)
    signals: dict[str, float | None] = {
        "top_probability": _round(top_probability(probs)) if probs else None,
        "margin": _round(margin(probs)) if probs else None,
        "entropy": _round(normalised_entropy(probs)) if probs else None,
        "model_disagreement": _round(model_disagreement([classes[top_index(v)] for v in vectors])),
        "model_tv_distance": _round(model_tv_distance(vectors)),
        "annotation_count": len(labels),
        "crowd_count": crowd,
        "expert_count": len(labels) - crowd,
        "agreement": _round(_agreement(counts, len(labels))),
        "distinct_labels": len(counts),
        "consensus_gap": _round(_consensus_gap(counts, len(labels))),
        "posterior_confidence": _round(max(post)) if post else None,
        "metadata_conflict": metadata_conflict_value(item.metadata, policy.metadata_conflict_field, classes, predicted),
        "feature_rules_fired": len(fired),
    }
    return Analysis(signals=signals, probs=probs, predicted=predicted, posterior=post, fired=fired, label_counts=counts)


def compute_signals(
    item: ItemInput, policy: PolicyConfig, reliabilities: Mapping[int, AnnotatorReliability]
) -> dict[str, float | None]:
    """Every signal in SIGNAL_NAMES for the item (None where not computable)."""
    return analyse(item, policy, reliabilities).signals


def annotations_by_role(item: ItemInput, *, experts: bool) -> tuple[AnnotationInput, ...]:
    return tuple(a for a in item.annotations if (a.role in aggregation.EXPERT_ROLES) == experts)
