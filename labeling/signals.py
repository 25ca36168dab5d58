"""Signals labeling sends for higher layers (routing) to act on; labeling never imports them.

`items_ingested` is sent explicitly by `labeling.services` (never from a model's save) inside the ingest
transaction, after the batch is written, with keyword arguments:

* `project_id`: int, the project the items belong to;
* `item_ids`: tuple[int, ...], the items the batch created or changed (ascending); items re-sent unchanged
  are left out, so re-ingesting known rows routes nothing again;
* `actor`: the user who ingested (None for commands and jobs without one);
* `created`: dict[int, CreatedItem], the items among `item_ids` that this batch created, by id, as written
  (so a receiver need not read back what was just inserted; these rows are invisible to other transactions
  until the batch commits, so there is nothing to lock either).

A receiver runs inside that same transaction: whatever it writes commits or rolls back with the batch, and
an exception it raises rejects the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

items_ingested = Signal()


@dataclass(frozen=True, slots=True)
class CreatedItem:
    """An item the batch inserted, with the values it was given (metadata {} and language and domain ""
    when absent, as stored) and its predictions as (prediction id, model name, model version,
    probabilities) in insertion order; `annotated`: the row brought annotations."""

    project_id: int
    data: Any
    metadata: Any
    language: str
    domain: str
    predictions: tuple[tuple[int, str, str, Any], ...]
    annotated: bool
