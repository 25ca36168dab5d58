"""django-q tasks of the pilot: each reads the clock and calls one service (schedules: workbench.schedules)."""

from __future__ import annotations

from django.utils import timezone

from labeling.models import Project
from pilot import feedback


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
