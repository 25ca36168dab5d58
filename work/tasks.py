"""django-q tasks of work: each reads the clock and calls one job (schedules: workbench.schedules)."""

from __future__ import annotations

from django.utils import timezone

from work import jobs


def assignments_expire() -> int:
    return jobs.assignments_expire(now=timezone.now())


def sla_breaches_handle() -> int:
    return jobs.sla_breaches_handle(now=timezone.now())


def crowd_breaches_escalate() -> int:
    return jobs.crowd_breaches_escalate(now=timezone.now())


def waiting_assign() -> int:
    return jobs.waiting_assign(now=timezone.now())
