"""Receivers of lower apps' signals; each only calls a routing service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from labeling.signals import CreatedItem
from routing.engine.types import Stage
from routing.services import items_route


def route_ingested_items(sender: Any, *, item_ids: Iterable[int], actor: Any = None,
                         created: Mapping[int, CreatedItem] | None = None, **kwargs: Any) -> None:
    """Route freshly ingested items inside the ingest transaction, so no item is stored unrouted."""
    items_route(item_ids=item_ids, stage=Stage.INGEST, actor=actor, created=created)
