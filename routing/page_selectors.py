"""Reads for the decision trail page: an item's history as people read it (who may read it: core.access)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from core.access import Principal, fields_hidden_from_reader
from core.models import AuditEvent
from labeling.models import Annotation, Item, Prediction, Review
from labeling.presentation import ItemView, item_view, reasons_without_hidden
from routing.models import OPEN_ASSIGNMENT_STATUSES, Assignment, RoutingDecision


def decision_explanation(decision: RoutingDecision | None) -> str:
    ranking = getattr(decision, "expert_ranking", None) or {}
    if isinstance(ranking, dict):
        text = ranking.get("explanation", "")
        return text if isinstance(text, str) else ""
    return ""


@dataclass(frozen=True)
class TrailEntry:
    at: dt.datetime
    kind: str  # ingest | prediction | decision | assignment | annotation | final | review | audit
    title: str
    actor: str = ""
    facts: tuple[tuple[str, str], ...] = ()
    text: str = ""
    reasons: tuple[dict[str, Any], ...] = ()
    data: str = ""
    # Where the entry sorts when that differs from `at` (see item_trail).
    sort_at: dt.datetime | None = None


def _name(user: Any) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ms(value: int | None) -> str:
    if value is None:
        return "—"
    seconds = value / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


# Entries sorting at the same instant keep the order things happen in (an ingest before its decision, a
# decision before the assignments it made, a review before the final label it confirmed or replaced).
_KIND_ORDER = {k: i for i, k in enumerate(
    ("ingest", "prediction", "annotation", "decision", "assignment", "review", "final", "audit")
)}


# Services stamp assignments and final labels with the `now` they were called with, a few milliseconds
# before the rows they come from (decisions, reviews) get their own timestamps.
_SAME_STEP = dt.timedelta(seconds=2)


def item_trail(*, item: Item, hidden_fields: Iterable[str] = ()) -> list[TrailEntry]:
    """One timeline of everything that happened to `item`, oldest first, in a fixed number of queries;
    a routing reason quoting one of `hidden_fields` (the reader's) keeps the field's name, not its value."""
    entries: list[TrailEntry] = [
        TrailEntry(
            at=item.created_at,
            kind="ingest",
            title="Ingested",
            facts=(
                ("external id", item.external_id),
                ("domain", item.domain.path if item.domain_id else "—"),
                ("language", item.language or "—"),
            ),
        )
    ]
    for p in Prediction.objects.filter(item=item).order_by("created_at", "id"):
        ranked = sorted(p.probabilities.items(), key=lambda kv: -kv[1])
        entries.append(TrailEntry(
            at=p.created_at,
            kind="prediction",
            title=f"Prediction by {p.model_name or 'model'} {p.model_version}",
            facts=tuple((label, _pct(value)) for label, value in ranked[:5]),
        ))
    decisions = list(
        RoutingDecision.objects.filter(item=item).select_related("policy_version", "actor").order_by("created_at", "id")
    )
    decided_at = {d.pk: d.created_at for d in decisions}
    for d in decisions:
        facts = [("policy version", f"v{d.policy_version.number}"), ("stage", d.stage)]
        if d.final_label:
            facts.append(("label", f"{d.final_label} ({d.final_source}, {_pct(d.confidence)})"))
        if d.labels_requested:
            facts.append(("labels requested", str(d.labels_requested)))
        facts.append(("inputs digest", d.inputs_digest[:12]))
        explanation = decision_explanation(d)
        entries.append(TrailEntry(
            at=d.created_at,
            kind="decision",
            title=f"Routing decision: {d.outcome}",
            actor=_name(d.actor),
            facts=tuple(facts),
            reasons=tuple(r for r in reasons_without_hidden(d.reasons, hidden_fields) if isinstance(r, dict)),
            text=explanation,
        ))
    assignments = list(Assignment.objects.filter(item=item).select_related("assignee").order_by("created_at", "id"))
    for a in assignments:
        facts = [("kind", a.get_kind_display()), ("status", a.get_status_display())]
        if a.due_at:
            facts.append(("due", _when(a.due_at)))
        if a.claimed_at:
            facts.append(("claimed", _when(a.claimed_at)))
        if a.completed_at:
            facts.append(("completed", _when(a.completed_at)))
        if a.assignee_id:
            who = _name(a.assignee)
        else:
            who = "open in the queue" if a.status in OPEN_ASSIGNMENT_STATUSES else "nobody took it"
        entries.append(TrailEntry(
            at=a.created_at,
            kind="assignment",
            title=f"{a.get_kind_display()} assignment: {who}",
            facts=tuple(facts),
            text=f"Declined: {a.decline_reason}" if a.decline_reason else "",
            # Right after the decision that made it (a replacement made later sorts at its own time).
            sort_at=max(a.created_at, decided_at.get(a.decision_id, a.created_at)),
        ))
    annotations = list(Annotation.objects.filter(item=item).select_related("annotator").order_by("submitted_at", "id"))
    for a in annotations:
        facts = [("confidence", f"{a.confidence}/5" if a.confidence else "—"), ("time spent", _ms(a.time_spent_ms))]
        if a.factors:
            facts.append(("decision factors", ", ".join(map(str, a.factors))))
        if a.unsure:
            facts.append(("flag", "unsure / guideline unclear"))
        entries.append(TrailEntry(
            at=a.submitted_at,
            kind="annotation",
            title=f"Labeled {a.label}",
            actor=f"{_name(a.annotator)} ({a.get_role_display()})",
            facts=tuple(facts),
            text=a.rationale,
        ))
    reviews = list(Review.objects.filter(item=item).select_related("reviewer").order_by("created_at", "id"))
    for r in reviews:
        title = (
            f"Review: agreed with {r.label}" if r.verdict == "agree"
            else f"Review: overrode {r.previous_label} with {r.label}"
        )
        entries.append(TrailEntry(at=r.created_at, kind="review", title=title, actor=_name(r.reviewer), text=r.reason))
    if item.final_label and item.labeled_at:
        settled_by = [d.created_at for d in decisions] + [r.created_at for r in reviews]
        entries.append(TrailEntry(
            sort_at=max([item.labeled_at] + [t for t in settled_by if t <= item.labeled_at + _SAME_STEP]),
            at=item.labeled_at,
            kind="final",
            title=f"Final label {item.final_label}",
            facts=(("source", item.get_final_source_display() or "—"), ("confidence", _pct(item.final_confidence))),
        ))
    related = (
        Q(object_type__in=("labeling.Item", "item"), object_id=str(item.pk))
        | Q(object_type="routing.Assignment", object_id__in=[str(a.pk) for a in assignments])
        | Q(object_type="labeling.Annotation", object_id__in=[str(a.pk) for a in annotations])
        | Q(object_type="labeling.Review", object_id__in=[str(r.pk) for r in reviews])
    )
    for e in AuditEvent.objects.filter(related).select_related("actor").order_by("at", "id"):
        entries.append(TrailEntry(
            at=e.at,
            kind="audit",
            title=f"Audit: {e.action}",
            actor=_name(e.actor),
            data=json.dumps(e.data, indent=1, sort_keys=True, default=str) if e.data else "",
        ))
    entries.sort(key=lambda e: (e.sort_at or e.at, _KIND_ORDER[e.kind]))
    return entries


def trail_item_view(*, item: Item, principal: Principal) -> ItemView:
    """The item's content as the trail shows it: whole for staff, without the project's restricted fields
    for everyone else (core.access)."""
    hidden = fields_hidden_from_reader(principal, item.project.field_visibility or {})
    return item_view(data=item.data, metadata=item.metadata, data_type=item.project.data_type, hidden_fields=hidden)
