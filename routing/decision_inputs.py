"""The stored form of what a routing decision was made from, and back (pure: no ORM).

`RoutingDecision.inputs` holds `inputs_to_dict(item, reliabilities)`; `inputs_from_dict` rebuilds the
exact engine inputs so `verify_decisions` can replay the decision. The policy is not repeated here: the
decision's policy version holds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from routing.engine.policy import relevant_reliabilities
from routing.engine.types import AnnotatorReliability, ItemInput


def ordered_probabilities(probabilities: Mapping[str, float], classes: tuple[str, ...]) -> dict[str, float]:
    """Probabilities in class order (unknown keys last, sorted): PostgreSQL's jsonb does not keep key order,
    and the engine must see the same mapping however the JSON came back."""
    known = [c for c in classes if c in probabilities]
    extra = sorted(k for k in probabilities if k not in classes)
    return {k: probabilities[k] for k in known + extra}


def inputs_to_dict(item: ItemInput, reliabilities: Mapping[int, AnnotatorReliability]) -> dict[str, Any]:
    """Canonical JSON of an item input and the reliabilities the engine can read for it (by annotator id)."""
    return {
        "item": item.to_dict(),
        "reliabilities": [r.to_dict() for r in relevant_reliabilities(item, reliabilities).values()],
    }


def inputs_from_dict(data: Mapping[str, Any]) -> tuple[ItemInput, dict[int, AnnotatorReliability]]:
    """Inverse of `inputs_to_dict`; raises KeyError/TypeError/ValueError on a malformed document."""
    item = ItemInput.from_dict(data["item"])
    item = dataclasses.replace(
        item,
        predictions=tuple(
            dataclasses.replace(p, probabilities=ordered_probabilities(p.probabilities, item.classes))
            for p in item.predictions
        ),
    )
    reliabilities = {}
    for raw in data.get("reliabilities", ()):
        reliability = AnnotatorReliability.from_dict(raw)
        reliabilities[reliability.annotator_id] = reliability
    return item, reliabilities
