"""django-q tasks of routing: each reads the clock and calls one service (schedules: workbench.schedules)."""

from __future__ import annotations

from django.utils import timezone

from routing import reliabilities


def accuracy_refresh() -> dict:
    result = reliabilities.accuracy_refresh(now=timezone.now())
    return {"accuracy_rows": result.accuracy_rows, "reliabilities": dict(result.reliabilities)}
