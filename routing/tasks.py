"""django-q tasks of routing: each reads the clock and calls one service (schedules: workbench.schedules)."""

from __future__ import annotations

from django.utils import timezone

from routing import offers, reliabilities


def accuracy_refresh() -> dict:
    result = reliabilities.accuracy_refresh(now=timezone.now())
    return {"accuracy_rows": result.accuracy_rows, "reliabilities": dict(result.reliabilities)}


def emails_send(outbox: list[list[str]]) -> int:
    """Emails composed by a request or a job (address, subject, body), sent off the request path."""
    return offers.emails_send(outbox)
