"""The deployment's schedule: every app's recurring jobs, by dotted task path (the project package is the
one place that knows every app)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
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


def schedules_ensure() -> list[Schedule]:
    """Create or update the django-q schedules of the recurring jobs (named after their task), so every
    deployment runs them; idempotent."""
    schedules = []
    with transaction.atomic():
        for func, (schedule_type, minutes) in SCHEDULES.items():
            schedule, _ = Schedule.objects.update_or_create(
                name=func.rsplit(".", 1)[1],
                defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1},
            )
            schedules.append(schedule)
    return schedules
