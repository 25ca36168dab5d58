"""Reads that may lag behind writes go to a read replica, when one is configured (`DATABASE_REPLICA_URL`).

Which reads: those of the stakeholder dashboards (pages, metric API, table downloads) and of the exports
(items, audit events, routing decisions). They read what others wrote, in bulk, and a replica a few
seconds behind changes nothing a person can act on. Everything else (claims, submits, routing, ingest,
the labeling pages, the admin) reads what it or another request has just written, so it stays on the
primary, as do all writes.

How a read is sent there, explicitly at the entry point rather than guessed from the model or the URL:

* `replica_reads()` marks a section (a context manager, or a decorator on a view): inside it the
  router answers the replica for ORM reads, and the raw SQL helpers (core.bulk) take the same answer from
  `read_alias()`. Dashboards use it: their reports call many selectors, and passing an alias through
  every one would add a parameter to each for a decision that belongs to the page.
  The section is a ContextVar, not a thread-local, so it is per request under threads and asyncio alike.
* A streamed export runs after its view has returned, outside any section the view could open, so the
  export selectors take the alias as an argument (`using=replica_alias()`).

Without a replica both answer "default" and no router is installed: behaviour is what it was.
Writes never go to the replica (`db_for_write` is always the primary, even for an object read from the
replica) and migrations run on the primary only: a streaming standby receives the schema by replication.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_reading_replica: ContextVar[bool] = ContextVar("reading_replica", default=False)


def replica_alias() -> str:
    """Where reads that may lag go: the replica when one is configured, else the primary."""
    return REPLICA if REPLICA in connections.settings else DEFAULT_DB_ALIAS


def read_alias() -> str:
    """The database a read goes to here and now: the replica inside `replica_reads()`, else the primary."""
    return replica_alias() if _reading_replica.get() else DEFAULT_DB_ALIAS


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside go to the replica (when configured); writes still go to the primary. Usable as a
    decorator, since @contextmanager's objects are ContextDecorators."""
    token = _reading_replica.set(True)
    try:
        yield
    finally:
        _reading_replica.reset(token)


class ReplicaRouter:
    """settings.DATABASE_ROUTERS when a replica is configured."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        # Outside a section None keeps Django's own choice: the database an instance came from (a related
        # read of an object loaded from the replica stays there), else the primary.
        return REPLICA if _reading_replica.get() and REPLICA in connections.settings else None

    def db_for_write(self, model: Any, **hints: Any) -> str:
        # Explicit, not None: Django would otherwise write an instance back to the database it was read from.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # The replica holds the primary's rows: an object read from either may refer to one from the other.
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {DEFAULT_DB_ALIAS, REPLICA} else None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db != REPLICA
