"""Signals labeling sends for higher layers (routing) to act on; labeling never imports them.

`items_ingested` is sent explicitly by `labeling.services` (never from a model's save) inside the ingest
transaction, after the batch is written, with keyword arguments:

* `project_id`: int, the project the items belong to;
* `item_ids`: tuple[int, ...], the items the batch created or changed (ascending); items re-sent unchanged
  are left out, so re-ingesting known rows routes nothing again;
* `actor`: the user who ingested (None for commands and jobs without one).

A receiver runs inside that same transaction: whatever it writes commits or rolls back with the batch, and
an exception it raises rejects the whole batch.
"""
from django.dispatch import Signal

items_ingested = Signal()
