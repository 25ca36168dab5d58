"""Reads for the feedback loop: a project's labeled history as pilot data, its calibration runs, and the
unlabeled items whose prediction is least certain (active learning). See docs/pilot.md."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from experts.models import Expert
from labeling.models import Annotation, FinalSource, GoldLabel, Item, JobStatus, Prediction, Project
from pilot.history import HistoryItem, pilot_data, worker_role
from pilot.models import CalibrationRun
from pilot.readers import EXPERT, PilotData
from routing.inputs import chunked
from routing.selectors import LABELED


@dataclass(frozen=True)
class ProjectHistory:
    data: PilotData
    counts: Mapping[str, int]  # items, truth_items, gold_items, judgments, dropped_labels, last_n


def project_history(*, project: Project, last_n: int, now: dt.datetime) -> ProjectHistory:
    """The project's last `last_n` labeled items (by when they were labeled, up to `now`) as pilot data,
    oldest first (pilot.history.pilot_data). Only annotations submitted up to `now` count.
    A fixed number of queries per chunk of items."""
    rows = list(
        Item.objects.filter(project=project, status__in=LABELED, labeled_at__lte=now)
        .order_by("-labeled_at", "-id")
        .values_list("id", "final_label", "final_source")[:last_n]
    )[::-1]
    ids = [item_id for item_id, _, _ in rows]
    gold: dict[int, str] = {}
    judgments: dict[int, list[tuple[str, str]]] = defaultdict(list)
    annotation_roles: dict[str, str] = {}
    predictions: dict[int, dict[str, float]] = {}
    for chunk in chunked(ids):
        gold.update(GoldLabel.objects.filter(item_id__in=chunk).values_list("item_id", "label"))
        for item_id, annotator_id, label, role in (
            Annotation.objects.filter(item_id__in=chunk, submitted_at__lte=now)
            .order_by("item_id", "submitted_at", "id")
            .values_list("item_id", "annotator_id", "label", "role")
        ):
            worker = str(annotator_id)
            judgments[item_id].append((worker, label))
            # Off the roster: an annotator who ever labeled as an expert or reviewer counts as one.
            if annotation_roles.get(worker) != EXPERT:
                annotation_roles[worker] = worker_role(role)
        # Oldest first, so the last one seen per item is its latest prediction.
        for item_id, probabilities in (
            Prediction.objects.filter(item_id__in=chunk).order_by("item_id", "created_at", "id").values_list(
                "item_id", "probabilities"
            )
        ):
            predictions[item_id] = probabilities
    roster = {
        str(user_id): worker_role(role)
        for user_id, role in Expert.objects.filter(user_id__in=[int(w) for w in annotation_roles]).values_list(
            "user_id", "role"
        )
    }
    items = [
        HistoryItem(
            key=str(item_id),
            judgments=tuple(judgments.get(item_id, ())),
            prediction=predictions.get(item_id),
            gold=gold.get(item_id, ""),
            expert_final=final_label if final_source == FinalSource.EXPERT else "",
        )
        for item_id, final_label, final_source in rows
    ]
    data, counts = pilot_data(
        classes=project.class_names, items=items, roles={**annotation_roles, **roster}
    )
    return ProjectHistory(data=data, counts={**counts, "last_n": last_n})


def calibration_runs_recent(*, project: Project, limit: int = 10) -> list[CalibrationRun]:
    return list(
        CalibrationRun.objects.filter(project=project).select_related("draft", "created_by").order_by("-created_at",
            "-id")[
            :limit
        ]
    )


def calibration_run_get(*, project: Project, run_id: int) -> CalibrationRun:
    """The run, if it belongs to the project (raises CalibrationRun.DoesNotExist otherwise)."""
    return CalibrationRun.objects.select_related("draft", "created_by").get(project=project, pk=run_id)


def latest_calibration_goal(*, project: Project) -> CalibrationRun | None:
    """The project's latest successful calibration run: the scheduled recommendation re-uses its goal."""
    return (
        CalibrationRun.objects.filter(project=project, status=JobStatus.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
