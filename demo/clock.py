"""A simulated clock for the demo's past: while it runs, `django.utils.timezone.now()` answers the simulated
time, so everything the services stamp (items' arrival, routing decisions, offers and their SLA deadlines,
labels, reviews, audit events, the `auto_now` fields) happens on the day the history says.

The services take `now` where their logic needs it, and the history passes it; the clock is what reaches
the timestamps no service takes a `now` for (the models' `auto_now_add`, ingest). Demo seeding only: the
request path never runs under it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from unittest import mock

from django.utils import timezone


class SimulatedClock:
    """A clock that moves only forward, and only when told."""

    def __init__(self, start: dt.datetime):
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs an aware datetime")
        self._now = start

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        if delta < dt.timedelta(0):
            raise ValueError(f"the simulated clock moves forward only, not by {delta}")
        self._now += delta
        return self._now

    def move_to(self, when: dt.datetime) -> dt.datetime:
        """Jump to `when`, or stay where the clock is if that is later (the clock never goes back)."""
        self._now = max(self._now, when)
        return self._now


@contextlib.contextmanager
def simulated_time(clock: SimulatedClock) -> Iterator[SimulatedClock]:
    """`timezone.now()` is `clock.now()` inside; the real clock again outside, whatever happens."""
    with mock.patch.object(timezone, "now", clock.now):
        yield clock
