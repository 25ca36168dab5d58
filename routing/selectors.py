"""Reads of routing: decision trails, next to label, policy history, verification of stored decisions,
the audit export, and the expert roster as ranking sees it."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, FloatField, OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.models import AuditEvent
from experts.availability import ExpertSnapshot
from experts.models import Role
from experts.selectors import expert_snapshots
from labeling.models import Item, ItemStatus, Project
from labeling.presentation import reasons_without_hidden, without_hidden
from labeling.storable import UTC_MAX, datetime_problem, to_utc
from routing.decision_inputs import inputs_from_dict
from routing.engine.policy import evaluate, inputs_digest
from routing.engine.types import (
    Decision,
    PolicyConfig,
)
from routing.inputs import CHUNK_SIZE
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    EscalationPolicy,
    PolicyVersion,
    RoutingDecision,
)


def live_versions(*, project_ids: Iterable[int]) -> dict[int, PolicyVersion]:
    """project id -> live policy version, for projects that already have a policy (one query)."""
    policies = EscalationPolicy.objects.filter(project_id__in=list(project_ids), live_version__isnull=False)
    return {p.project_id: p.live_version for p in policies.select_related("live_version")}


def latest_item_ids(*, project: Project, last_n: int) -> list[int]:
    """Ids of the project's last `last_n` items by arrival."""
    return list(
        Item.objects.filter(project=project).order_by("-created_at", "-id").values_list("id", flat=True)[:last_n]
    )


def decision_trail(item: Item) -> list[RoutingDecision]:
    """Every routing decision about the item, oldest first, with its policy version."""
    return list(
        RoutingDecision.objects.filter(item=item).select_related("policy_version", "actor").order_by("created_at", "id")
    )


def decision_trail_row(decision: RoutingDecision, *, hidden_fields: Iterable[str] = ()) -> dict[str, Any]:
    """The API/JSON form of one decision in an item's trail; reasons quoting a field in `hidden_fields`
    (those the reader does not see) keep the field's name but not its value."""
    return {
        "id": decision.id,
        "policy_version": decision.policy_version.number,
        "stage": decision.stage,
        "outcome": decision.outcome,
        "final_label": decision.final_label,
        "final_source": decision.final_source,
        "confidence": decision.confidence,
        "reasons": reasons_without_hidden(decision.reasons, hidden_fields),
        "signals": decision.signals,
        "labels_requested": decision.labels_requested,
        "inputs_digest": decision.inputs_digest,
        "created_at": decision.created_at.isoformat(),
    }


LABELED = (ItemStatus.LABELED, ItemStatus.AUDITED)


NEXT_TO_LABEL_MAX = 1000


def _latest_signal(name: str) -> Subquery:
    latest = RoutingDecision.objects.filter(item=OuterRef("pk")).order_by("-created_at", "-id")
    return Subquery(latest.annotate(value=Cast(KeyTextTransform(name, "signals"), FloatField())).values("value")[:1])


def items_next_to_label(*, project: Project) -> QuerySet[Item]:
    """The project's items not yet labeled (status other than labeled and audited), most uncertain first:
    by the normalised entropy of the latest prediction (highest first), then its margin between the top two
    classes (smallest first), then id. Both come from the item's latest routing decision's signals, which
    routing computed from the latest prediction. Items without a prediction come last.

    A correlated subquery per unlabeled item over the (item, created_at) index of decisions: cost grows
    with the project's unlabeled items; slice the result (next_to_label_rows bounds it).
    """
    return (
        Item.objects.filter(project=project)
        .exclude(status__in=LABELED)
        .annotate(uncertainty=_latest_signal("entropy"), margin=_latest_signal("margin"))
        .order_by(F("uncertainty").desc(nulls_last=True), F("margin").asc(nulls_last=True), "id")
    )


def next_to_label_rows(
    *, project: Project, limit: int, offset: int = 0, hidden_fields: Iterable[str]
) -> list[dict[str, Any]]:
    """One page of `items_next_to_label` with each item's latest decision's signals (two queries), leaving
    `hidden_fields` (the reader's, core.access.fields_hidden_from_reader) out of `data`."""
    if not 0 <= limit <= NEXT_TO_LABEL_MAX:
        raise ValueError(f"limit must be between 0 and {NEXT_TO_LABEL_MAX}")
    if offset < 0:
        raise ValueError("offset must be 0 or more")
    items = list(
        items_next_to_label(project=project).only("id", "external_id", "data", "status")[offset : offset + limit]
    )
    signals: dict[int, dict[str, Any]] = {}
    # Newest first per item: the first row seen of each item is its latest decision.
    for item_id, values in (
        RoutingDecision.objects.filter(item_id__in=[i.id for i in items])
        .order_by("item_id", "-created_at", "-id")
        .values_list("item_id", "signals")
    ):
        signals.setdefault(item_id, values)
    hidden = list(hidden_fields)
    return [
        {
            "external_id": i.external_id,
            "data": without_hidden(i.data or {}, {}, hidden)[0] if hidden else i.data,
            "status": i.status,
            "signals": signals.get(i.id, {}),
        }
        for i in items
    ]


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class VersionHistoryRow:
    version: PolicyVersion
    predecessor: PolicyVersion | None
    changes: tuple[FieldChange, ...] = field(default_factory=tuple)


def config_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[FieldChange]:
    """Field-by-field differences between two stored configs, in PolicyConfig field order."""
    before = before or {}
    names = list(PolicyConfig().to_dict())
    names += sorted((set(before) | set(after)) - set(names))
    return [
        FieldChange(field=name, before=before.get(name), after=after.get(name))
        for name in names
        if before.get(name) != after.get(name)
    ]


def policy_version_status(version: PolicyVersion) -> str:
    """"draft" (never routed), "live" (the version its policy routes with now) or "retired" (published,
    since replaced; earlier decisions still cite it)."""
    if version.is_draft:
        return "draft"
    return "live" if version.policy.live_version_id == version.pk else "retired"


def policy_history(policy: EscalationPolicy) -> list[VersionHistoryRow]:
    """Versions newest first, each with its diff from the version numbered just before it."""
    versions = list(policy.versions.select_related("author").order_by("number"))
    rows = []
    previous = None
    for version in versions:
        rows.append(
            VersionHistoryRow(
                version=version,
                predecessor=previous,
                changes=tuple(config_diff(previous.config if previous else None, version.config)),
            )
        )
        previous = version
    return rows[::-1]


@dataclass(frozen=True)
class Mismatch:
    decision_id: int
    fields: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    mismatches: tuple[Mismatch, ...]


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _close_mapping(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(
        _close(a[k], b[k]) if isinstance(a[k], (int, float)) and isinstance(b[k], (int, float)) else a[k] == b[k]
        for k in a
    )


def decision_differences(stored: RoutingDecision, config: PolicyConfig) -> list[str]:
    """Which stored fields a replay of the decision from its stored inputs does not reproduce."""
    try:
        item_input, reliabilities = inputs_from_dict(stored.inputs)
    except (KeyError, TypeError, ValueError):
        return ["inputs"]
    replay: Decision = evaluate(item_input, config, reliabilities)
    replay_dict = replay.to_dict()
    differences = []
    if inputs_digest(item_input, config, reliabilities) != stored.inputs_digest:
        differences.append("inputs_digest")
    if item_input.item_id != stored.item_id:
        differences.append("item")
    if replay.outcome.value != stored.outcome:
        differences.append("outcome")
    if replay.final_label != stored.final_label:
        differences.append("final_label")
    if replay.final_source != stored.final_source:
        differences.append("final_source")
    if not _close(replay.confidence, stored.confidence):
        differences.append("confidence")
    if replay_dict["reasons"] != stored.reasons:
        differences.append("reasons")
    if not _close_mapping(replay_dict["signals"], stored.signals):
        differences.append("signals")
    if not _close_mapping(replay_dict["posterior"], stored.posterior):
        differences.append("posterior")
    if replay.labels_requested != stored.labels_requested:
        differences.append("labels_requested")
    return differences


def decisions_verify(*, project: Project | None = None, chunk_size: int = CHUNK_SIZE) -> VerifyReport:
    """Replay every stored decision (of one project, or all) from its inputs and its policy version."""
    base = RoutingDecision.objects.order_by("id")
    if project is not None:
        base = base.filter(item__project=project)
    configs: dict[int, PolicyConfig] = {}
    mismatches: list[Mismatch] = []
    checked = 0
    last_id = 0
    while True:
        chunk = list(base.filter(id__gt=last_id)[:chunk_size])
        if not chunk:
            break
        missing = {d.policy_version_id for d in chunk} - configs.keys()
        for version in PolicyVersion.objects.filter(id__in=missing):
            configs[version.id] = PolicyConfig.from_dict(version.config)
        for decision in chunk:
            differences = decision_differences(decision, configs[decision.policy_version_id])
            if differences:
                mismatches.append(Mismatch(decision_id=decision.id, fields=tuple(differences)))
        checked += len(chunk)
        last_id = chunk[-1].id
    return VerifyReport(checked=checked, mismatches=tuple(mismatches))


def parse_bound(value: str, *, end: bool) -> dt.datetime:
    """A date (YYYY-MM-DD, whole day: `end` means up to the next midnight) or an ISO datetime, UTC if naive."""
    value = (value or "").strip()
    # A bare date first: parse_datetime would also read it, as midnight, losing "the whole day".
    try:
        day = parse_date(value)
        moment = parse_datetime(value) if day is None else None
    except ValueError:
        day = moment = None
    if day is not None:
        if end and day == dt.date.max:
            return UTC_MAX
        moment = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time.min)
    elif moment is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    problem = datetime_problem(moment)
    if problem:
        raise ValueError(f"{value!r} {problem}")
    return to_utc(moment)


def audit_events_between(*, since: dt.datetime, until: dt.datetime) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(at__gte=since, at__lt=until).order_by("at", "id")


def decisions_between(*, since: dt.datetime, until: dt.datetime) -> QuerySet[RoutingDecision]:
    return (
        RoutingDecision.objects.filter(created_at__gte=since, created_at__lt=until)
        .select_related("item__project", "policy_version")
        .order_by("created_at", "id")
    )


def audit_event_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "kind": "event",
        "id": event.id,
        "at": event.at.isoformat(),
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
    }


def decision_export_row(decision: RoutingDecision) -> dict[str, Any]:
    return {
        "kind": "decision",
        "id": decision.id,
        "created_at": decision.created_at.isoformat(),
        "project": decision.item.project.slug,
        "item_id": decision.item_id,
        "external_id": decision.item.external_id,
        "policy_version_id": decision.policy_version_id,
        "policy_version": decision.policy_version.number,
        "stage": decision.stage,
        "actor_id": decision.actor_id,
        "outcome": decision.outcome,
        "final_label": decision.final_label,
        "final_source": decision.final_source,
        "confidence": decision.confidence,
        "posterior": decision.posterior,
        "reasons": decision.reasons,
        "signals": decision.signals,
        "labels_requested": decision.labels_requested,
        "inputs": decision.inputs,
        "inputs_digest": decision.inputs_digest,
    }


def audit_export_lines(*, since: dt.datetime, until: dt.datetime, events: bool, decisions: bool,
                       using: str | None = None) -> Iterator[str]:
    """JSONL lines (newline included) of audit events and/or decisions in [since, until), streamed in chunks,
    read from the database `using` (an export passes core.replicas.replica_alias())."""
    if events:
        for event in audit_events_between(since=since, until=until).using(using).iterator(chunk_size=CHUNK_SIZE):
            yield json.dumps(audit_event_row(event), sort_keys=True) + "\n"
    if decisions:
        rows = decisions_between(since=since, until=until).using(using).iterator(chunk_size=CHUNK_SIZE)
        for decision in rows:
            yield json.dumps(decision_export_row(decision), sort_keys=True) + "\n"


def open_assignment_counts(*, roles: Iterable[str] = (Role.EXPERT,)) -> dict[int, int]:
    """user id -> open (offered or active) assignments held, for roster members in `roles` (one query)."""
    rows = (
        Assignment.objects.filter(
            status__in=OPEN_ASSIGNMENT_STATUSES, assignee__isnull=False, assignee__expert__role__in=list(roles)
        )
        .values("assignee_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def roster_for_ranking(*, roles: Iterable[str] = (Role.EXPERT,)) -> list[ExpertSnapshot]:
    """Active roster members in `roles` as ranking snapshots, with their open-assignment counts (six queries)."""
    roles = list(roles)
    counts = open_assignment_counts(roles=roles)
    return [
        s
        for role in roles
        for s in expert_snapshots(role=role, open_assignment_counts=counts)
    ]
