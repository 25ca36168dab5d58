"""The deployment's schedule: every app's recurring jobs, by dotted task path (the project package is the
one place that knows every app)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django_q.models import Schedule

# Dotted task path -> (schedule type, minutes for the MINUTES type); each app's tasks.py.
SCHEDULES: Mapping[str, tuple[str, int | None]] = {
    "work.tasks.assignments_expire": (Schedule.MINUTES, 1),
    "work.tasks.sla_breaches_handle": (Schedule.MINUTES, 5),
    "work.tasks.crowd_breaches_escalate": (Schedule.MINUTES, 5),
    "work.tasks.waiting_assign": (Schedule.MINUTES, 5),
    "routing.tasks.accuracy_refresh": (Schedule.HOURLY, None),
    # Queues one calibration per project (pilot.feedback.calibration_recommend).
    "pilot.tasks.calibration_recommendations_enqueue": (Schedule.DAILY, None),
}


def schedules_ensure(*, using: str = DEFAULT_DB_ALIAS) -> list[Schedule]:
    """Create or update the django-q schedules of the recurring jobs (named after their task), so every
    deployment runs them; idempotent. `migrate` runs it (WorkbenchConfig.ready), so a deployment cannot
    miss it."""
    schedules = []
    with transaction.atomic(using=using):
        for func, (schedule_type, minutes) in SCHEDULES.items():
            schedule, _ = Schedule.objects.using(using).update_or_create(
                name=func.rsplit(".", 1)[1],
                defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1},
            )
            schedules.append(schedule)
    return schedules


def schedules_ensure_after_migrate(*, using: str, **kwargs: object) -> None:
    """post_migrate receiver: ensure the schedules once django-q's table exists (a partial `migrate` of
    another app may run before it does)."""
    if Schedule._meta.db_table in connections[using].introspection.table_names():
        schedules_ensure(using=using)
