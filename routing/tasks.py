"""django-q tasks: each reads the clock and calls one service (schedules: services.schedules_ensure)."""

from __future__ import annotations

from django.utils import timezone

from routing import services


def assignments_expire() -> int:
    return services.assignments_expire(now=timezone.now())


def sla_breaches_handle() -> int:
    return services.sla_breaches_handle(now=timezone.now())


def crowd_breaches_escalate() -> int:
    return services.crowd_breaches_escalate(now=timezone.now())


def waiting_assign() -> int:
    return services.waiting_assign(now=timezone.now())


def accuracy_refresh() -> dict:
    result = services.accuracy_refresh(now=timezone.now())
    return {"accuracy_rows": result.accuracy_rows, "reliabilities": dict(result.reliabilities)}
