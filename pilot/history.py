"""A project's own labeled history as pilot data, so the simulator and calibration can replay it (pure: no
ORM; `pilot.selectors.project_history` reads the rows).

Truth is an item's gold label, else its final label when an expert gave it. Judgments are the item's
annotations in the order they were submitted, by worker; a worker is an expert when the roster says
expert or reviewer. The prediction is the item's latest one. See docs/pilot.md ("Calibrating on a
project's own history").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pilot.readers import CROWD, EXPERT, History, PilotData, Worker

EXPERT_TIER = frozenset({"expert", "reviewer"})


@dataclass(frozen=True)
class HistoryItem:
    key: str  # the item's id, as text
    judgments: tuple[tuple[str, str], ...]  # (worker key, label) in submission order
    prediction: Mapping[str, float] | None = None  # class -> probability of the latest prediction
    gold: str = ""
    expert_final: str = ""  # the final label when an expert gave it


def worker_role(roster_role: str | None) -> str:
    """The simulator's role of a person: expert for the roster's experts and reviewers, else crowd."""
    return EXPERT if roster_role in EXPERT_TIER else CROWD


def pilot_data(
    *, classes: Sequence[str], items: Sequence[HistoryItem], roles: Mapping[str, str]
) -> tuple[PilotData, dict[str, int]]:
    """PilotData of the items that have a judgment or a usable prediction, and counts of what went in.

    Labels outside `classes` (the project's classes changed since) are dropped, as is a prediction
    whose probabilities over `classes` do not sum to a positive number.
    """
    classes = tuple(classes)
    known = set(classes)
    keys: list[str] = []
    judgments: list[tuple[tuple[str, str], ...]] = []
    predictions: dict[str, tuple[float, ...]] = {}
    truth: dict[str, str] = {}
    counts = {"items": 0, "truth_items": 0, "gold_items": 0, "judgments": 0, "dropped_labels": 0}
    for item in items:
        kept = tuple((w, label) for w, label in item.judgments if label in known)
        counts["dropped_labels"] += len(item.judgments) - len(kept)
        probabilities = _probabilities(item.prediction, classes)
        if not kept and probabilities is None:
            continue
        keys.append(item.key)
        judgments.append(kept)
        if probabilities is not None:
            predictions[item.key] = probabilities
        label = item.gold if item.gold in known else item.expert_final if item.expert_final in known else ""
        if label:
            truth[item.key] = label
            counts["truth_items"] += 1
            counts["gold_items"] += item.gold in known
        counts["judgments"] += len(kept)
    counts["items"] = len(keys)
    workers = {w: Worker(role=roles.get(w, CROWD)) for js in judgments for w, _ in js}
    history = History(
        classes=classes, items=tuple(keys), judgments=tuple(judgments), workers=workers, predictions=predictions
    )
    return PilotData(history=history, gold=truth), counts


def _probabilities(prediction: Mapping[str, float] | None, classes: tuple[str, ...]) -> tuple[float, ...] | None:
    if not prediction:
        return None
    values = [float(prediction.get(c, 0.0)) for c in classes]
    if any(not math.isfinite(v) or v < 0 for v in values):
        return None
    total = math.fsum(values)
    return tuple(v / total for v in values) if total > 0 else None
