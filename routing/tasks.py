"""django-q tasks: each reads the clock and calls one service (schedules: services.schedules_ensure)."""

from __future__ import annotations

from django.utils import timezone

from labeling.models import Project
from routing import feedback, services


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


def calibration_recommendations_enqueue() -> int:
    return feedback.calibration_recommendations_enqueue()


def calibration_recommend(project_id: int) -> dict:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"project": project_id, "skipped": "the project no longer exists"}
    result = feedback.calibration_recommend(project=project, now=timezone.now())
    if result.event is None:
        return {"project": project.slug, "skipped": result.skipped}
    return {"project": project.slug, "event": result.event.pk, "differs": result.event.data["differs"]}


def calibration_run(run_id: int) -> dict:
    run = feedback.calibration_run_execute(run_id=run_id, now=timezone.now())
    return {"run": run.pk, "status": run.status, "draft": run.draft_id}
