"""Writes of the feedback loop: calibration on a project's own labeled history, scheduled (a recommendation
the dashboard flags) or started by an admin (a background run with progress that saves a draft version,
never a live one). See docs/pilot.md ("Calibrating on a project's own history")."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from core.audit import audit_record
from core.models import AuditEvent
from labeling.models import JobStatus, Project
from pilot.models import CalibrationRun
from pilot.selectors import ProjectHistory, latest_calibration_goal, project_history
from routing.engine.types import PolicyConfig
from routing.models import EscalationPolicy, PolicyVersion
from routing.policies import policy_draft_save, policy_for_project

if TYPE_CHECKING:
    from pilot.calibration import Candidate

logger = logging.getLogger(__name__)

RECOMMENDATION_ACTION = "calibration.recommendation"
CALIBRATION_RUN_TASK = "pilot.tasks.calibration_run"
RECOMMEND_TASK = "pilot.tasks.calibration_recommend"
# Items calibrated on: the scheduled recommendation reads the last RECOMMEND_LAST_N labeled items, a run
# what the admin asks for, up to RUN_MAX_LAST_N. A replay of 1,000 items takes about half a second and a
# search replays 196 candidates with predictions (40 without): about 100 s for 1,000 items and 300 s for
# 3,000 (measured, docs/pilot.md), inside the background worker's 10-minute timeout.
RECOMMEND_LAST_N = 1000
RUN_DEFAULT_LAST_N = 1000
RUN_MAX_LAST_N = 3000
# Below this many items with a truth (gold, or an expert's final label) the split into calibration and
# held-out halves says nothing worth acting on.
MIN_TRUTH_ITEMS = 20
CALIBRATION_SEED = 0
# A run still queued or running this long after it was created has lost its worker (the worker's timeout
# is 10 minutes): starting a new run marks it failed instead of refusing.
RUN_STALE_AFTER = dt.timedelta(hours=1)
# Progress: reading the history is the first PROGRESS_READ percent, the replays run up to PROGRESS_REPLAYED.
PROGRESS_READ = 5
PROGRESS_REPLAYED = 95


class NotEnoughHistory(ValueError):
    """Too few items with a truth to calibrate on."""


@dataclass(frozen=True)
class Recommendation:
    project: Project
    event: AuditEvent | None  # None when skipped
    skipped: str = ""  # why nothing was recorded


def _live(project: Project) -> tuple[EscalationPolicy, PolicyVersion, PolicyConfig]:
    policy = policy_for_project(project)
    return policy, policy.live_version, PolicyConfig.from_dict(policy.live_version.config)


def _require_history(history: ProjectHistory, last_n: int) -> None:
    truth = history.counts["truth_items"]
    if truth < MIN_TRUTH_ITEMS:
        raise NotEnoughHistory(
            f"only {truth} of the last {last_n} labeled items have a gold label or an expert's final label; "
            f"calibration needs at least {MIN_TRUTH_ITEMS}"
        )


# pilot.calibration (with the simulator it replays on) is imported by the functions that calibrate, which
# run in the background workers: the policy admin imports this module in every web process, whose pages never
# calibrate (docs/deploy.md, "Memory").


def _candidates(live: PolicyConfig, history: ProjectHistory) -> list[PolicyConfig]:
    from pilot import calibration

    # The live policy first: on an exact tie the choice keeps it, so an equal-cost twin never reads as a change.
    return [live, *calibration.candidate_policies(live, with_predictions=bool(history.data.history.predictions))]


def _figures(candidate: Candidate) -> dict[str, float]:
    from pilot import calibration

    return {key: candidate.held_out[key] for key in calibration.REPORTED}


def calibration_recommend(
    *, project: Project, last_n: int = RECOMMEND_LAST_N, now: dt.datetime | None = None, seed: int = CALIBRATION_SEED
) -> Recommendation:
    """Calibrate the live policy on the project's last `last_n` labeled items and record the result as an
    audit event "calibration.recommendation" on the project (the dashboard shows the latest one).

    The goal is the latest successful calibration run's (target accuracy or budget); without one, the
    live policy's own accuracy on this history (its accuracy trend on the calibration split): the
    cheapest thresholds that do as well. The event's `differs` is true when a searched threshold moves
    materially (calibration.material_changes). Recorded on every run, so the latest event always says
    whether the live thresholds are still the recommended ones. Skipped (nothing recorded) when fewer
    than MIN_TRUTH_ITEMS items have a truth.
    """
    from pilot import calibration

    now = now or timezone.now()
    _, version, live = _live(project)
    history = project_history(project=project, last_n=last_n, now=now)
    try:
        _require_history(history, last_n)
    except NotEnoughHistory as exc:
        return Recommendation(project=project, event=None, skipped=str(exc))
    evaluation = calibration.evaluate_candidates(history.data, _candidates(live, history), seed=seed)
    live_candidate = evaluation.candidates[0]
    goal_run = latest_calibration_goal(project=project)
    if goal_run is not None:
        target, budget = goal_run.target_accuracy, goal_run.budget
        goal = {"target_accuracy": target, "budget": budget, "from": f"calibration run {goal_run.pk}"}
    else:
        target, budget = live_candidate.calibration["accuracy_trend"], None
        goal = {"target_accuracy": target, "budget": None, "from": f"the accuracy of live v{version.number}"}
    best, met = calibration.choose(evaluation.candidates, target_accuracy=target, budget=budget)
    changes = calibration.material_changes(best.policy, live)
    recommended, current = _figures(best), _figures(live_candidate)
    if changes:
        moves = ", ".join(f"{c['field']} {c['live']} → {c['recommended']}" for c in changes)
        summary = (
            f"Recommended thresholds differ from live v{version.number}: {moves}. On held-out items: accuracy "
            f"{recommended['accuracy']:.3f} (live {current['accuracy']:.3f}), cost {recommended['cost_per_item']:.2f} "
            f"per item (live {current['cost_per_item']:.2f})."
        )
    else:
        summary = (
            f"The thresholds of live v{version.number} are still the recommended ones "
            f"(none would move by more than {calibration.MATERIAL_CHANGE:g})."
        )
    data: dict[str, Any] = {
        "summary": summary,
        "differs": bool(changes),
        "changes": changes,
        "recommended": calibration.thresholds(best.policy),
        "live": calibration.thresholds(live),
        "live_version": version.number,
        "goal": goal,
        "met": met,
        "held_out": {"items": len(evaluation.held_out_gold), "recommended": recommended, "live": current},
        "history": dict(history.counts),
        "seed": seed,
    }
    with transaction.atomic():
        event = audit_record(
            actor=None, action=RECOMMENDATION_ACTION, obj_type="labeling.Project", obj_id=project.pk, data=data
        )
    return Recommendation(project=project, event=event)


def calibration_recommendations_enqueue() -> int:
    """Queue one recommendation task per project that has a live policy (each task reads the clock);
    returns how many. One task per project keeps a slow project from holding up the rest."""
    project_ids = list(
        EscalationPolicy.objects.filter(live_version__isnull=False).order_by("project_id").values_list(
            "project_id", flat=True
        )
    )
    for project_id in project_ids:
        async_task(RECOMMEND_TASK, project_id, task_name=f"calibration-recommend-{project_id}")
    return len(project_ids)


# --- calibration runs -------------------------------------------------------------------------------------


def _goal_errors(target_accuracy: Any, budget: Any, last_n: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if (target_accuracy is None) == (budget is None):
        errors["target_accuracy"] = ["Give either a target accuracy or a budget of labels per item, not both."]
    elif target_accuracy is not None and not (
        isinstance(target_accuracy, (int, float)) and 0.0 < target_accuracy <= 1.0
    ):
        errors["target_accuracy"] = [f"A target accuracy is a number in (0, 1], not {target_accuracy!r}."]
    elif budget is not None and not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget >= 0):
        errors["budget"] = [f"A budget is a number of labels per item ≥ 0, not {budget!r}."]
    if not isinstance(last_n, int) or isinstance(last_n, bool) or not 1 <= last_n <= RUN_MAX_LAST_N:
        errors["last_n"] = [f"Calibrate on 1 to {RUN_MAX_LAST_N} items, not {last_n!r}."]
    return errors


def calibration_run_start(
    *,
    project: Project,
    actor: AbstractBaseUser | None,
    target_accuracy: float | None = None,
    budget: float | None = None,
    last_n: int = RUN_DEFAULT_LAST_N,
    now: dt.datetime | None = None,
) -> CalibrationRun:
    """Queue a calibration of the project's live policy on its last `last_n` labeled items, for exactly one
    goal: the cheapest thresholds reaching `target_accuracy`, or the most accurate within `budget` labels
    per item. The background task starts once the run is committed. Refused while another run of the
    project is queued or running (one older than RUN_STALE_AFTER is marked failed instead)."""
    now = now or timezone.now()
    errors = _goal_errors(target_accuracy, budget, last_n)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # Locking the policy row serialises starts per project.
        EscalationPolicy.objects.select_for_update().get(pk=policy_for_project(project).pk)
        unfinished = CalibrationRun.objects.filter(
            project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        )
        unfinished.filter(created_at__lt=now - RUN_STALE_AFTER).update(
            status=JobStatus.FAILED,
            error="The background worker stopped before the run finished.",
            finished_at=now,
        )
        busy = unfinished.filter(created_at__gte=now - RUN_STALE_AFTER).first()
        if busy is not None:
            raise ValidationError(f"Calibration run {busy.pk} of {project.slug} is still {busy.status}; wait for it.")
        run = CalibrationRun.objects.create(
            project=project,
            target_accuracy=target_accuracy,
            budget=budget,
            last_n=last_n,
            seed=CALIBRATION_SEED,
            created_by=actor,
            created_at=now,
        )
        audit_record(
            actor=actor,
            action="calibration_run.start",
            obj_type="routing.CalibrationRun",
            obj_id=run.pk,
            data={"project": project.slug, "target_accuracy": target_accuracy, "budget": budget, "last_n": last_n},
        )
        # Only a committed run may start: a rolled-back request must never leave a job behind.
        transaction.on_commit(lambda: async_task(CALIBRATION_RUN_TASK, run.pk, task_name=f"calibration-run-{run.pk}"))
    return run


def _progress_reporter(run_id: int) -> Callable[[int], None]:
    """Store the run's percent done when it grows by a whole point. Each store is its own statement,
    outside any transaction, so the page polling the run sees it at once."""
    shown = [-1]

    def report(percent: int) -> None:
        percent = max(0, min(100, int(percent)))
        if percent > shown[0]:
            shown[0] = percent
            CalibrationRun.objects.filter(pk=run_id).update(progress=percent)

    return report


def _fail(run: CalibrationRun, message: str) -> CalibrationRun:
    with transaction.atomic():
        CalibrationRun.objects.filter(pk=run.pk).update(
            status=JobStatus.FAILED, error=message, finished_at=timezone.now()
        )
        audit_record(
            actor=run.created_by,
            action="calibration_run.failed",
            obj_type="routing.CalibrationRun",
            obj_id=run.pk,
            data={"project": run.project.slug, "error": message},
        )
    run.refresh_from_db()
    return run


def calibration_run_execute(*, run_id: int, now: dt.datetime | None = None) -> CalibrationRun:
    """Carry out a queued run: read the history (up to `now`), replay every candidate (progress 5 → 95%),
    and save the chosen thresholds as a draft version of the project's policy (policy_draft_save: never
    published). A run that is not queued any more (done, or taken by another worker) is left as it is.
    Too little history, or invalid input, fails the run with the reason; any other error fails it too and
    is raised for the task log."""
    from pilot import calibration

    now = now or timezone.now()
    taken = CalibrationRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), progress=0
    )
    run = CalibrationRun.objects.select_related("project", "created_by").get(pk=run_id)
    if not taken:
        return run
    report = _progress_reporter(run.pk)
    try:
        policy, version, live = _live(run.project)
        history = project_history(project=run.project, last_n=run.last_n, now=now)
        _require_history(history, run.last_n)
        report(PROGRESS_READ)
        result = calibration.calibrate(
            history.data,
            live,
            target_accuracy=run.target_accuracy,
            budget=run.budget,
            seed=run.seed,
            policies=_candidates(live, history),
            progress=lambda share: report(PROGRESS_READ + (PROGRESS_REPLAYED - PROGRESS_READ) * share),
        )
    except (ValueError, ValidationError) as exc:
        return _fail(run, "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    except Exception as exc:
        logger.exception("calibration run %s failed", run.pk)
        _fail(run, f"Unexpected error: {exc.__class__.__name__}: {exc}")
        raise
    live_figures = _figures(result.candidates[0])
    held = result.held_out
    note = (
        f"Calibration run {run.pk} ({run.goal}) on the last {history.counts['items']} labeled items, "
        f"{history.counts['truth_items']} with a truth, against live v{version.number}: held-out accuracy "
        f"{held['accuracy']:.4f} at {held['labels_per_item']:.2f} labels/item, cost {held['cost_per_item']:.2f}/item "
        f"(live: {live_figures['accuracy']:.4f}, {live_figures['labels_per_item']:.2f}, "
        f"{live_figures['cost_per_item']:.2f})"
        f"{'' if result.met else '; the goal was NOT met on the calibration split'}."
    )
    document = {
        **result.to_dict(),
        "live": {
            "version": version.number,
            "thresholds": calibration.thresholds(live),
            "held_out": live_figures,
        },
        "changes": calibration.material_changes(result.policy, live),
        "history": dict(history.counts),
    }
    with transaction.atomic():
        draft = policy_draft_save(policy=policy, config=result.policy, author=run.created_by, change_note=note)
        CalibrationRun.objects.filter(pk=run.pk).update(
            status=JobStatus.SUCCEEDED,
            progress=100,
            result=document,
            draft=draft,
            finished_at=timezone.now(),
        )
        audit_record(
            actor=run.created_by,
            action="calibration_run.succeeded",
            obj_type="routing.CalibrationRun",
            obj_id=run.pk,
            data={"project": run.project.slug, "draft_version": draft.number, "met": result.met,
                "held_out": dict(held)},
        )
    run.refresh_from_db()
    return run
