"""Reads for the labeling pages: a person's queue, and the work panel of an assignment (what they see of
the item, the choices, the evidence an expert or reviewer gets)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q

from core.access import fields_hidden_from_work
from labeling.models import Annotation, Item, Prediction, Project
from labeling.presentation import ItemView, item_view, reasons_without_hidden
from routing.models import OPEN_ASSIGNMENT_STATUSES, Assignment, AssignmentKind, AssignmentStatus, RoutingDecision
from routing.page_selectors import decision_explanation
from work.selectors import DUE_SOON, claimable_slots, presented_kind, worker_for


@dataclass(frozen=True)
class OpenAssignment:
    assignment: Assignment
    # "Review" or "Label": a gold check is listed as ordinary labeling work.
    task: str
    due_state: str  # "overdue" | "soon" | ""


def queue_projects(*, user: Any) -> list[Project]:
    """Projects where the person holds open work or could claim an open slot, by name."""
    mine = Assignment.objects.filter(assignee_id=user.pk,
        status__in=OPEN_ASSIGNMENT_STATUSES).values("item__project_id")
    pool = claimable_slots(user=user, worker=worker_for(user=user)).order_by().values("item__project_id")
    return list(Project.objects.filter(Q(id__in=mine) | Q(id__in=pool)).order_by("name", "id"))


def open_assignments(*, user: Any, project: Project | None = None, now: dt.datetime,
    limit: int = 100) -> list[OpenAssignment]:
    """The person's claimed and offered assignments, soonest deadline first."""
    qs = Assignment.objects.filter(assignee=user, status__in=OPEN_ASSIGNMENT_STATUSES).select_related("item__project")
    if project is not None:
        qs = qs.filter(item__project=project)
    rows = []
    for a in qs.order_by(F("due_at").asc(nulls_last=True), "id")[:limit]:
        due_state = ""
        if a.due_at is not None:
            due_state = "overdue" if a.due_at <= now else ("soon" if a.due_at <= now + DUE_SOON else "")
        rows.append(OpenAssignment(
            assignment=a, task="Review" if a.kind == AssignmentKind.REVIEW else "Label", due_state=due_state,
        ))
    return rows


def held_assignment(*, user: Any, project: Project | None = None, now: dt.datetime) -> Assignment | None:
    """The person's claimed assignment with a running lease, soonest deadline first: "start labeling"
    reopens it before claiming anything new, so nobody piles up claims they walked away from."""
    qs = Assignment.objects.filter(assignee_id=user.pk, status=AssignmentStatus.ACTIVE).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__gt=now)
    )
    if project is not None:
        qs = qs.filter(item__project=project)
    return qs.order_by(F("due_at").asc(nulls_last=True), "id").first()


# The most likely classes an expert sees with their probabilities (ten digits would crowd the panel).
SHOWN_PROBABILITIES = 5


@dataclass(frozen=True)
class Choice:
    name: str
    hotkey: str
    suggested: bool


@dataclass(frozen=True)
class Probability:
    label: str
    value: float


@dataclass(frozen=True)
class ShownAnnotation:
    annotator: str
    role: str
    label: str
    rationale: str
    factors: tuple[str, ...]
    confidence: int | None
    unsure: bool


@dataclass(frozen=True)
class WorkPanel:
    """Everything the labeling (or review) panel of one assignment shows its assignee."""

    assignment: Assignment
    item: Item
    project: Project
    # "crowd", "expert" or "review": how the panel looks. A gold check takes the look of the viewer's
    # ordinary work, so nothing on the page tells it apart.
    presentation: str
    view: ItemView
    choices: tuple[Choice, ...]
    rationale_required: bool
    suggestion: str = ""
    probabilities: tuple[Probability, ...] = ()
    model_version: str = ""
    reasons: tuple[dict[str, Any], ...] = ()
    expert_explanation: str = ""
    current_label: str = ""
    current_source: str = ""
    annotations: tuple[ShownAnnotation, ...] = field(default_factory=tuple)

    @property
    def is_review(self) -> bool:
        return self.presentation == "review"

    @property
    def shows_suggestion(self) -> bool:
        return bool(self.suggestion)


def presentation_for(*, kind: str) -> str:
    """"crowd", "expert" or "review"; a gold check is presented as crowd work (as the API presents it)."""
    return presented_kind(kind)


def _latest_prediction(item: Item) -> Prediction | None:
    return Prediction.objects.filter(item=item).order_by("-created_at", "-id").first()


def _latest_decision(item: Item) -> RoutingDecision | None:
    return RoutingDecision.objects.filter(item=item).order_by("-created_at", "-id").first()




def work_panel(*, assignment: Assignment, user: Any) -> WorkPanel:
    """The panel for `assignment` as its assignee sees it (the caller has checked it is theirs)."""
    item = assignment.item
    project = item.project
    presentation = presentation_for(kind=assignment.kind)
    # The same rule as the API's assignment payload (core.access).
    hidden = fields_hidden_from_work(project.field_visibility or {}, work_kind=presentation)
    view = item_view(data=item.data, metadata=item.metadata, data_type=project.data_type, hidden_fields=hidden)
    shows_model = presentation != "crowd" or project.show_suggestion_to_crowd
    prediction = _latest_prediction(item) if shows_model else None
    suggestion = prediction.top_label if prediction is not None else ""
    probabilities = ()
    if prediction is not None:
        ranked = sorted(
            ((name, float(prediction.probabilities.get(name, 0.0))) for name in project.class_names),
            key=lambda pair: -pair[1],
        )
        probabilities = tuple(Probability(label=name, value=value) for name, value in ranked[:SHOWN_PROBABILITIES])
    reasons: tuple[dict[str, Any], ...] = ()
    explanation = ""
    if presentation != "crowd":
        # Why it came here: the decision that created this assignment (else the item's latest one).
        decision = assignment.decision if assignment.decision_id else _latest_decision(item)
        if decision is not None:
            reasons = tuple(r for r in reasons_without_hidden(decision.reasons, hidden) if isinstance(r, dict))
        explanation = decision_explanation(decision)
    annotations: tuple[ShownAnnotation, ...] = ()
    if presentation == "review":
        annotations = tuple(
            ShownAnnotation(
                annotator=a.annotator.get_full_name() or a.annotator.get_username(),
                role=a.role,
                label=a.label,
                rationale=a.rationale,
                factors=tuple(a.factors or ()),
                confidence=a.confidence,
                unsure=a.unsure,
            )
            for a in Annotation.objects.filter(item=item).select_related("annotator").order_by("submitted_at", "id")
        )
    return WorkPanel(
        assignment=assignment,
        item=item,
        project=project,
        presentation=presentation,
        view=view,
        choices=tuple(
            Choice(name=c["name"], hotkey=str(c.get("hotkey", "")), suggested=c["name"] == suggestion)
            for c in project.classes
        ),
        rationale_required=presentation in ("expert", "review") or project.rationale_required,
        suggestion=suggestion,
        probabilities=probabilities,
        model_version=prediction.model_version if prediction is not None else "",
        reasons=reasons,
        expert_explanation=explanation,
        current_label=item.final_label,
        current_source=item.final_source,
        annotations=annotations,
    )
