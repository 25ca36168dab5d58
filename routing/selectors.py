"""Reads for routing: engine inputs loaded in batch, decision trails, policy history, verification, export,
and assignments: who may claim what, queue counts, the roster as ranking sees it."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from experts.availability import ExpertSnapshot, primary_subtag
from experts.models import Domain, Expert, Expertise, Role
from experts.selectors import expert_snapshots
from labeling.bulk import columns, model_from_row, model_value, one_of, prepared_cursor
from labeling.models import Annotation, AuditEvent, GoldLabel, Item, Prediction, Project
from labeling.presentation import without_hidden
from routing.decision_inputs import inputs_from_dict, ordered_probabilities
from routing.engine.policy import evaluate, inputs_digest
from routing.engine.types import (
    AnnotationInput,
    AnnotatorReliability,
    Decision,
    ItemInput,
    PolicyConfig,
    PredictionInput,
)
from routing.exceptions import AssignmentNotFound
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    EscalationPolicy,
    PolicyVersion,
    RoutingDecision,
)
from routing.models import AnnotatorReliability as AnnotatorReliabilityRow

# Items per batch when loading engine inputs: bounded memory, a fixed number of queries per batch.
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class RouteInput:
    """One item as loaded for routing: the row (to update), what the engine gets, and the item's work as
    routing plans it: its open slots (id, kind, status; soonest deadline first) and whether a review that
    was not cancelled exists."""

    item: Item
    item_input: ItemInput
    reliabilities: Mapping[int, AnnotatorReliability]
    open_slots: tuple[tuple[int, str, str], ...] = ()
    reviewed: bool = False


def chunked(values: Sequence[Any], size: int = CHUNK_SIZE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def route_inputs(*, item_ids: Iterable[int], lock: bool = False, locked_items: Sequence[Item] = ()) -> list[RouteInput]:
    """Engine inputs for the given items in five queries whatever their number (call with <= CHUNK_SIZE ids),
    with each item's work (RouteInput.open_slots, .reviewed); each item's project comes with its escalation
    policy and live version (`live_version_of`).

    With lock=True (inside a transaction) the item rows are locked, in id order, so two routings of the
    same item run one after the other and the second sees the annotations the first committed.
    `locked_items`: items the caller has already loaded as routing_item_sql reads them and locked in this
    transaction (a submit's assignment_locked); they are not read again.
    Hand-written, prepared SQL (every submit routes its item again): compiling the ORM's twins of these
    queries cost more than routing the item.
    """
    ids = sorted(set(item_ids))
    if not ids:
        return []
    held = {i.id: i for i in locked_items}
    missing = [i for i in ids if i not in held]
    items = sorted(
        [*(held[i] for i in ids if i in held), *(_items_for_routing(missing, lock=lock) if missing else ())],
        key=lambda i: i.id,
    )
    if not items:
        return []
    ids = [i.id for i in items]
    # The engine needs a few columns of each prediction and annotation: tuples, not model instances.
    predictions: dict[int, list[PredictionInput]] = defaultdict(list)
    annotations: dict[int, list[AnnotationInput]] = defaultdict(list)
    of_items, params = one_of("item_id", ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, id, model_version, probabilities FROM {Prediction._meta.db_table}"
            f" WHERE {of_items} ORDER BY item_id, created_at, id",
            params,
        )
        prediction_rows = cursor.fetchall()
        cursor.execute(
            f"SELECT item_id, id, annotator_id, label, role FROM {Annotation._meta.db_table}"
            f" WHERE {of_items} ORDER BY item_id, submitted_at, id",
            params,
        )
        for item_id, annotation_id, annotator_id, label, role in cursor.fetchall():
            annotations[item_id].append(
                AnnotationInput(id=annotation_id, annotator_id=annotator_id, label=label, role=role)
            )
    work = _work_of(ids)
    classes_of = {i.id: tuple(i.project.class_names) for i in items}
    for item_id, prediction_id, model_version, probabilities in prediction_rows:
        predictions[item_id].append(
            PredictionInput(
                id=prediction_id,
                model_version=model_version,
                probabilities=ordered_probabilities(
                    model_value(Prediction, "probabilities", probabilities), classes_of[item_id]
                ),
            )
        )
    annotator_ids = {a.annotator_id for rows in annotations.values() for a in rows}
    reliabilities = reliabilities_for(
        project_ids={i.project_id for i in items},
        annotator_ids=annotator_ids,
        projects={i.project_id: i.project for i in items},
    )
    spent = project_labels_per_item(
        {i.project_id for i in items if (v := live_version_of(i.project)) and v.config.get("target_labels_per_item")}
    )
    loaded = []
    for item in items:
        item_annotations = annotations.get(item.id, [])
        slots = work.get(item.id, ())
        item_input = ItemInput(
            item_id=item.id,
            classes=classes_of[item.id],
            predictions=tuple(predictions.get(item.id, ())),
            annotations=tuple(item_annotations),
            data=item.data,
            metadata=item.metadata,
            language=item.language,
            domain=item.domain.path if item.domain_id else "",
            crowd_overdue=crowd_overdue(slots),
            class_prior=class_prior_of(item.project),
            project_labels_per_item=spent.get(item.project_id),
            model_temperature=model_temperature_of(item.project),
        )
        project_reliabilities = reliabilities.get(item.project_id, {})
        used = {
            a.annotator_id: project_reliabilities[a.annotator_id]
            for a in item_annotations
            if a.annotator_id in project_reliabilities
        }
        loaded.append(
            RouteInput(
                item=item,
                item_input=item_input,
                reliabilities=used,
                open_slots=tuple((s.id, s.kind, s.status) for s in slots if s.status in OPEN_ASSIGNMENT_STATUSES),
                reviewed=any(s.kind == AssignmentKind.REVIEW and s.status != AssignmentStatus.CANCELLED for s in slots),
            )
        )
    return loaded


@dataclass(frozen=True)
class WorkSlot:
    """One of an item's slots as routing reads it (_work_of)."""

    id: int
    kind: str
    status: str
    assignee_id: int | None


def _work_of(item_ids: Sequence[int]) -> dict[int, list[WorkSlot]]:
    """item id -> the slots routing looks at, soonest deadline first: open ones, reviews not cancelled, and
    crowd offers that expired unclaimed (crowd_overdue). One prepared statement: every submit routes its
    item."""
    a = Assignment._meta.db_table
    open_statuses = "', '".join(s.value for s in OPEN_ASSIGNMENT_STATUSES)
    crowd, review = AssignmentKind.CROWD.value, AssignmentKind.REVIEW.value
    cancelled, expired = AssignmentStatus.CANCELLED.value, AssignmentStatus.EXPIRED.value
    of_items, params = one_of("item_id", item_ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, id, kind, status, assignee_id FROM {a} WHERE {of_items} AND"
            f" (status IN ('{open_statuses}') OR (kind = '{review}' AND status <> '{cancelled}')"
            f" OR (kind = '{crowd}' AND status = '{expired}' AND assignee_id IS NULL))"
            " ORDER BY due_at, id",
            params,
        )
        rows = cursor.fetchall()
    work: dict[int, list[WorkSlot]] = defaultdict(list)
    for item_id, *slot in rows:
        work[item_id].append(WorkSlot(*slot))
    return work


def crowd_overdue(slots: Iterable[WorkSlot]) -> bool:
    """Whether the crowd has let the item down: a crowd offer of it expired unclaimed at its SLA deadline
    (services.crowd_breaches_escalate expires them; a lease that runs out expires a slot someone held).
    Read from the slots at every routing, so the item stays with the experts once it went to them."""
    return any(
        s.kind == AssignmentKind.CROWD and s.status == AssignmentStatus.EXPIRED and s.assignee_id is None
        for s in slots
    )


def routing_item_sql() -> tuple[str, str]:
    """(select, from) reading items `it` as routing needs them: with the domain, the project, its escalation
    policy and the policy's live version (what select_related would give); routing_items_from_rows reads
    the rows back."""
    i, d, p = Item._meta.db_table, Domain._meta.db_table, Project._meta.db_table
    ep, pv = EscalationPolicy._meta.db_table, PolicyVersion._meta.db_table
    select = (
        f"{columns(Item, 'it')}, {columns(Domain, 'dom')}, {columns(Project, 'pr')},"
        f" {columns(EscalationPolicy, 'pol')}, {columns(PolicyVersion, 'v')}"
    )
    tables = (
        f"{i} it LEFT JOIN {d} dom ON dom.id = it.domain_id JOIN {p} pr ON pr.id = it.project_id"
        f" LEFT JOIN {ep} pol ON pol.project_id = pr.id LEFT JOIN {pv} v ON v.id = pol.live_version_id"
    )
    return select, tables


_ROUTING_MODELS = (Item, Domain, Project, EscalationPolicy, PolicyVersion)


def routing_items_from_rows(rows: Iterable[Sequence[Any]]) -> list[Item]:
    """Items from rows of routing_item_sql's columns, each with its domain, project, policy and live version
    loaded (None where there is none). Items of one project share one project object."""
    widths = [len(m._meta.concrete_fields) for m in _ROUTING_MODELS]
    bounds = [sum(widths[:k]) for k in range(len(widths) + 1)]
    projects: dict[int, Project] = {}
    items = []
    for row in rows:
        item_row, domain_row, project_row, policy_row, version_row = (
            row[bounds[k] : bounds[k + 1]] for k in range(len(widths))
        )
        item = model_from_row(Item, item_row)
        item.domain = model_from_row(Domain, domain_row) if item.domain_id is not None else None
        project = projects.get(item.project_id)
        if project is None:
            project = projects[item.project_id] = model_from_row(Project, project_row)
            policy = model_from_row(EscalationPolicy, policy_row) if policy_row[0] is not None else None
            if policy is not None:
                policy.project = project
                policy.live_version = (
                    model_from_row(PolicyVersion, version_row) if policy.live_version_id is not None else None
                )
            Project.escalation_policy.related.set_cached_value(project, policy)
        item.project = project
        items.append(item)
    return items


def _items_for_routing(ids: Sequence[int], *, lock: bool) -> list[Item]:
    """The items, in id order, as routing_items_from_rows gives them, in one prepared statement."""
    select, tables = routing_item_sql()
    condition, params = one_of("it.id", ids)
    sql = f"SELECT {select} FROM {tables} WHERE {condition} ORDER BY it.id"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE OF it"
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return routing_items_from_rows(cursor.fetchall())


def reliabilities_for(
    *, project_ids: Iterable[int], annotator_ids: Iterable[int], projects: Mapping[int, Project]
) -> dict[int, dict[int, AnnotatorReliability]]:
    """project id -> annotator id -> reliability, in one query; rows estimated for other classes are skipped."""
    annotator_ids = sorted(annotator_ids)
    if not annotator_ids:
        return {}
    result: dict[int, dict[int, AnnotatorReliability]] = defaultdict(dict)
    in_projects, project_params = one_of("project_id", sorted(project_ids))
    of_annotators, annotator_params = one_of("annotator_id", annotator_ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(AnnotatorReliabilityRow)} FROM {AnnotatorReliabilityRow._meta.db_table}"
            f" WHERE {in_projects} AND {of_annotators}",
            [*project_params, *annotator_params],
        )
        rows = [model_from_row(AnnotatorReliabilityRow, r) for r in cursor.fetchall()]
    for row in rows:
        if list(row.classes) != projects[row.project_id].class_names:
            continue
        result[row.project_id][row.annotator_id] = AnnotatorReliability(
            annotator_id=row.annotator_id,
            confusion=tuple(tuple(float(x) for x in r) for r in row.confusion),
            n_observations=float(row.n_observations),
        )
    return result


def project_labels_per_item(project_ids: Iterable[int]) -> dict[int, float]:
    """Crowd labels spent per item so far, by project: what a policy's budget (target_labels_per_item) is
    held to. Only for the projects asked for: a project without a budget never pays for these counts."""
    ids = sorted(project_ids)
    if not ids:
        return {}
    items = dict(
        Item.objects.filter(project_id__in=ids).values("project_id").annotate(n=Count("id"))
        .values_list("project_id", "n")
    )
    crowd = dict(
        Annotation.objects.filter(item__project_id__in=ids, role=Role.CROWD)
        .values("item__project_id")
        .annotate(n=Count("id"))
        .values_list("item__project_id", "n")
    )
    return {p: round(crowd.get(p, 0) / items[p], 4) for p in ids if items.get(p)}


def model_temperature_of(project: Project) -> float | None:
    """The model's temperature the last refresh learned, while the live policy learns one; else None."""
    policy = getattr(project, "escalation_policy", None)
    version = live_version_of(project)
    if policy is None or version is None or not version.config.get("learn_model_temperature"):
        return None
    return policy.model_temperature


def class_prior_of(project: Project) -> tuple[float, ...]:
    """The project's learned class prior in its classes' order, or () when none was learned for these classes."""
    policy = getattr(project, "escalation_policy", None)
    stored = policy.class_prior if policy is not None else None
    if not stored or list(stored.get("classes", ())) != project.class_names:
        return ()
    return tuple(float(p) for p in stored["prior"])


def live_version_of(project: Project) -> PolicyVersion | None:
    """The project's live policy version as loaded with it (route_inputs joins it); None without a policy."""
    try:
        policy = project.escalation_policy
    except EscalationPolicy.DoesNotExist:
        return None
    return policy.live_version


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


def decision_trail_row(decision: RoutingDecision) -> dict[str, Any]:
    """The API/JSON form of one decision in an item's trail."""
    return {
        "id": decision.id,
        "policy_version": decision.policy_version.number,
        "stage": decision.stage,
        "outcome": decision.outcome,
        "final_label": decision.final_label,
        "final_source": decision.final_source,
        "confidence": decision.confidence,
        "reasons": decision.reasons,
        "signals": decision.signals,
        "labels_requested": decision.labels_requested,
        "inputs_digest": decision.inputs_digest,
        "created_at": decision.created_at.isoformat(),
    }


# --- policy history -------------------------------------------------------------------------------------


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


# --- verification -----------------------------------------------------------------------------------------


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


# --- audit export -----------------------------------------------------------------------------------------


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
        moment = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time.min)
    elif moment is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    return moment


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


def audit_export_lines(*, since: dt.datetime, until: dt.datetime, events: bool, decisions: bool) -> Iterator[str]:
    """JSONL lines (newline included) of audit events and/or decisions in [since, until), streamed in chunks."""
    if events:
        for event in audit_events_between(since=since, until=until).iterator(chunk_size=CHUNK_SIZE):
            yield json.dumps(audit_event_row(event), sort_keys=True) + "\n"
    if decisions:
        for decision in decisions_between(since=since, until=until).iterator(chunk_size=CHUNK_SIZE):
            yield json.dumps(decision_export_row(decision), sort_keys=True) + "\n"


# --- assignments ------------------------------------------------------------------------------------------

# An open assignment is "due soon" when its SLA deadline is at most this far away.
DUE_SOON = dt.timedelta(hours=4)
# Which queue each roster role claims from. Gold checks are never queued: a claim creates them for the
# claimer (see services.assignment_claim_next).
POOL_KINDS: Mapping[str, tuple[str, ...]] = {
    Role.CROWD: (AssignmentKind.CROWD,),
    Role.EXPERT: (AssignmentKind.EXPERT,),
    Role.REVIEWER: (AssignmentKind.REVIEW,),
}


@dataclass(frozen=True)
class Worker:
    """The roster facts a claim depends on."""

    user_id: int
    role: str
    capacity: int
    expertise: tuple[str, ...]  # domain paths
    languages: tuple[str, ...]
    # Claims they made (Expert.claims_made): the gold-check draw's sequence number.
    claims_made: int = 0


# The roster columns a claim reads, in the order worker_from_row takes them.
WORKER_COLUMNS = "id, role, capacity, languages, claims_made"


def worker_for(*, user: Any) -> Worker | None:
    """The user as a worker, or None when they are not an active roster member (one query, two for experts).
    Hand-written SQL, like the claim it precedes on every call of the API's `next`."""
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT {WORKER_COLUMNS} FROM {Expert._meta.db_table} WHERE user_id = %s AND active", [user.pk])
        row = cursor.fetchone()
    return worker_from_row(user=user, row=row)


def worker_from_row(*, user: Any, row: Sequence[Any] | None) -> Worker | None:
    """A Worker from the WORKER_COLUMNS of the user's roster entry (None for no row); experts' expertise is
    read here, so nobody else pays that query."""
    if row is None:
        return None
    expert_id, role, capacity, languages, claims_made = row
    if isinstance(languages, str):
        languages = json.loads(languages)
    paths = (
        Expertise.objects.filter(expert_id=expert_id).values_list("domain__path", flat=True)
        if role == Role.EXPERT
        else ()
    )
    return Worker(
        user_id=user.pk,
        role=role,
        capacity=capacity,
        expertise=tuple(sorted(paths)),
        languages=tuple(languages or ()),
        claims_made=claims_made,
    )


def _coverage(worker: Worker) -> Q:
    """Items an expert may take: domain covered by their expertise (or no domain), language spoken (or none).

    The SQL twin of experts.availability.qualified: a path covers itself and everything below it, and
    languages match on their primary subtag.
    """
    domain = Q(item__domain__isnull=True)
    for path in worker.expertise:
        domain |= Q(item__domain__path=path) | Q(item__domain__path__startswith=path + "/")
    language = Q(item__language="")
    for subtag in sorted({primary_subtag(tag) for tag in worker.languages} - {""}):
        language |= Q(item__language__iexact=subtag) | Q(item__language__istartswith=subtag + "-")
    return domain & language


def items_held_or_done(*, user: Any) -> tuple[QuerySet, QuerySet]:
    """Subqueries of item ids the user holds, has declined, or has annotated: never offered to them again."""
    held = Assignment.objects.filter(
        assignee_id=user.pk, status__in=[*OPEN_ASSIGNMENT_STATUSES, AssignmentStatus.DECLINED]
    ).values("item_id")
    annotated = Annotation.objects.filter(annotator_id=user.pk).values("item_id")
    return held, annotated


def claimable_slots(*, user: Any, worker: Worker | None, project: Project | None = None) -> QuerySet[Assignment]:
    """Unassigned open slots this worker may claim (their role's queue, coverage for experts), soonest
    deadline first, excluding items they hold, declined or annotated."""
    kinds = POOL_KINDS.get(worker.role, ()) if worker is not None else ()
    if not kinds:
        return Assignment.objects.none()
    qs = Assignment.objects.filter(status=AssignmentStatus.OFFERED, assignee__isnull=True, kind__in=kinds)
    if project is not None:
        qs = qs.filter(project=project)
    if worker.role == Role.EXPERT:
        qs = qs.filter(_coverage(worker))
    held, annotated = items_held_or_done(user=user)
    return qs.exclude(item_id__in=held).exclude(item_id__in=annotated).order_by("due_at", "id")


@dataclass(frozen=True)
class QueuedSlot:
    """The head of a queue as the claim needs it."""

    id: int
    kind: str
    project_id: int
    due_at: dt.datetime | None
    # The project's live policy's gold_check_rate (0 before it has a policy).
    gold_check_rate: float


def _like_prefix(value: str) -> str:
    """`value` as a LIKE pattern matching strings that start with it ("\\" escapes the wildcards)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def queue_condition(*, user: Any, worker: Worker, project: Project | None) -> tuple[str, str, list[Any]] | None:
    """(joins, where, params) selecting, as `q`, the unassigned slots of the worker's queue they may claim:
    the SQL twin of claimable_slots (tests compare the two); None when their role claims from no queue.

    The role's queue, the project, nothing the user holds, declined or annotated, and for experts domain
    coverage (the path itself or below it) and language (primary subtag, either way round; an item without
    one matches everyone). The exclusions are NOT EXISTS probes by item, so a claim costs the same for a
    newcomer and for someone with years of history.
    """
    kinds = POOL_KINDS.get(worker.role, ())
    if not kinds:
        return None
    i, d = Item._meta.db_table, Domain._meta.db_table
    untouched, untouched_params = _untouched_by(user, "q.item_id")
    # The queue's state is literal SQL (not parameters) so the partial claim index always matches.
    where = [
        f"q.status = '{AssignmentStatus.OFFERED.value}'",
        "q.assignee_id IS NULL",
        f"q.kind IN ({', '.join(['%s'] * len(kinds))})",
        untouched,
    ]
    params: list[Any] = [*[str(k) for k in kinds], *untouched_params]
    if project is not None:
        where.append("q.project_id = %s")
        params.append(project.pk)
    joins = ""
    if worker.role == Role.EXPERT:
        joins = f" JOIN {i} it ON it.id = q.item_id LEFT JOIN {d} dom ON dom.id = it.domain_id"
        domain = ["it.domain_id IS NULL"]
        for path in worker.expertise:
            domain.append("dom.path = %s OR dom.path LIKE %s ESCAPE '\\'")
            params += [path, _like_prefix(path + "/")]
        language = ["it.language = ''"]
        for subtag in sorted({primary_subtag(tag) for tag in worker.languages} - {""}):
            language.append("LOWER(it.language) = %s OR LOWER(it.language) LIKE %s ESCAPE '\\'")
            params += [subtag, _like_prefix(subtag + "-")]
        where += [f"({' OR '.join(domain)})", f"({' OR '.join(language)})"]
    return joins, " AND ".join(where), params


def _untouched_by(user: Any, item_column: str) -> tuple[str, list[Any]]:
    """SQL (and its parameters) true when the user neither holds, declined nor annotated the item in
    `item_column`: the SQL twin of items_held_or_done, as NOT EXISTS probes by item."""
    a, an = Assignment._meta.db_table, Annotation._meta.db_table
    held = "', '".join(s.value for s in (*OPEN_ASSIGNMENT_STATUSES, AssignmentStatus.DECLINED))
    return (
        f"NOT EXISTS (SELECT 1 FROM {a} h WHERE h.item_id = {item_column} AND h.assignee_id = %s"
        f" AND h.status IN ('{held}'))"
        f" AND NOT EXISTS (SELECT 1 FROM {an} n WHERE n.item_id = {item_column} AND n.annotator_id = %s)",
        [user.pk, user.pk],
    )


def unseen_gold_items(*, user: Any, project_id: int, limit: int) -> list[int]:
    """Ids of the first `limit` items (by id) of the project with a gold label the user neither holds,
    declined nor annotated: the candidates for their gold check (one prepared statement)."""
    unseen, params = _untouched_by(user, "g.item_id")
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT g.item_id FROM {GoldLabel._meta.db_table} g JOIN {Item._meta.db_table} gi ON gi.id = g.item_id"
            f" WHERE gi.project_id = %s AND {unseen} ORDER BY g.item_id LIMIT %s",
            [project_id, *params, limit],
        )
        return [item_id for (item_id,) in cursor.fetchall()]


def gold_rate_sql(project_column: str) -> str:
    """SQL for the gold_check_rate of the live policy of the project in `project_column`: NULL without a
    live policy, PolicyConfig's default when its config leaves the rate out (as PolicyConfig.from_dict)."""
    ep, pv = EscalationPolicy._meta.db_table, PolicyVersion._meta.db_table
    rate = (
        "(v.config ->> 'gold_check_rate')::float8"
        if connection.vendor == "postgresql"
        else "CAST(json_extract(v.config, '$.gold_check_rate') AS REAL)"
    )
    default = float(PolicyConfig.__dataclass_fields__["gold_check_rate"].default)
    return (
        f"(SELECT COALESCE({rate}, {default!r}) FROM {ep} pol JOIN {pv} v ON v.id = pol.live_version_id"
        f" WHERE pol.project_id = {project_column})"
    )


def next_queued_slot(
    *, user: Any, worker: Worker | None, project: Project | None = None, lock: bool = False
) -> QueuedSlot | None:
    """The first row of `claimable_slots(...)`, by hand-written SQL (queue_condition); with lock=True
    (inside a transaction, PostgreSQL only) the row is locked and rows other claimers hold are skipped."""
    condition = queue_condition(user=user, worker=worker, project=project) if worker is not None else None
    if condition is None:
        return None
    joins, where, params = condition
    sql = (
        f"SELECT q.id, q.kind, q.project_id, q.due_at, {gold_rate_sql('q.project_id')}"
        f" FROM {Assignment._meta.db_table} q{joins} WHERE {where} ORDER BY q.due_at, q.id LIMIT 1"
    )
    if lock and connection.features.has_select_for_update_skip_locked:
        sql += " FOR UPDATE OF q SKIP LOCKED"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    due_at = model_value(Assignment, "due_at", found[3])
    return QueuedSlot(
        id=found[0], kind=found[1], project_id=found[2], due_at=due_at, gold_check_rate=float(found[4] or 0.0)
    )


def item_for_work_sql(project: Project | None, *, outer: bool = False) -> tuple[str, str]:
    """(select, joins) reading an item `it` with its domain, and its project unless the caller holds it;
    `outer` when `it` itself is outer-joined (the project's join must not drop the row then)."""
    select = f"{columns(Item, 'it')}, {columns(Domain, 'dom')}"
    joins = f" LEFT JOIN {Domain._meta.db_table} dom ON dom.id = it.domain_id"
    if project is None:
        select += f", {columns(Project, 'pr')}"
        joins += f" {'LEFT ' if outer else ''}JOIN {Project._meta.db_table} pr ON pr.id = it.project_id"
    return select, joins


def item_from_row(row: Sequence[Any], project: Project | None) -> Item:
    n_item, n_domain = len(Item._meta.concrete_fields), len(Domain._meta.concrete_fields)
    item = model_from_row(Item, row[:n_item])
    item.domain = model_from_row(Domain, row[n_item : n_item + n_domain]) if item.domain_id is not None else None
    item.project = project if project is not None else model_from_row(Project, row[n_item + n_domain :])
    return item


def item_for_work(*, item_id: int, project: Project | None = None) -> Item:
    """The item an assignment is about, with its domain and project loaded, in one hand-written query;
    pass the item's project when the caller holds it, saving that join."""
    select, joins = item_for_work_sql(project)
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT {select} FROM {Item._meta.db_table} it{joins} WHERE it.id = %s", [item_id])
        row = cursor.fetchone()
    if row is None:
        raise Item.DoesNotExist(f"No item {item_id}.")
    return item_from_row(row, project)


def assignment_locked(*, assignment_id: int, user_id: int) -> Assignment | None:
    """The user's assignment with its item loaded as routing reads it (routing_item_sql: domain, project,
    policy, live version), both rows locked for the rest of the transaction, item first (the order routing
    locks in, so the two never deadlock: PostgreSQL locks the rows of `FOR UPDATE OF` in the order named);
    None when there is no such assignment of theirs. One prepared statement: every submit runs it, and
    routing the item afterwards (route_inputs' locked_items) reads it no more."""
    select, tables = routing_item_sql()
    lock = " FOR UPDATE OF it, a" if connection.features.has_select_for_update else ""
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(Assignment, 'a')}, {select} FROM {tables} JOIN {Assignment._meta.db_table} a"
            f" ON a.item_id = it.id WHERE a.id = %s AND a.assignee_id = %s{lock}",
            [assignment_id, user_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(Assignment._meta.concrete_fields)
    assignment = model_from_row(Assignment, row[:n])
    (assignment.item,) = routing_items_from_rows([row[n:]])
    return assignment


def offered_to(*, user: Any, project: Project | None = None) -> QuerySet[Assignment]:
    """Slots offered to the user by name and not started yet, soonest deadline first."""
    qs = Assignment.objects.filter(assignee_id=user.pk, status=AssignmentStatus.OFFERED)
    if project is not None:
        qs = qs.filter(project=project)
    return qs.order_by("due_at", "id")


def open_assignment_count(*, user: Any) -> int:
    """How many open assignments (offered or active) the user holds: what their capacity limits."""
    return Assignment.objects.filter(assignee_id=user.pk, status__in=OPEN_ASSIGNMENT_STATUSES).count()


def queue_summary(*, user: Any, project: Project | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """Counts for the person's queue: `assigned` (their open assignments), `due_soon` (of those, due within
    DUE_SOON), `overdue` (past their deadline), `open_for_you` (unassigned slots they could claim)."""
    now = now or timezone.now()
    mine = Assignment.objects.filter(assignee_id=user.pk, status__in=OPEN_ASSIGNMENT_STATUSES)
    if project is not None:
        mine = mine.filter(project=project)
    counts = mine.aggregate(
        assigned=Count("id"),
        due_soon=Count("id", filter=Q(due_at__gt=now, due_at__lte=now + DUE_SOON)),
        overdue=Count("id", filter=Q(due_at__lte=now)),
    )
    counts["open_for_you"] = claimable_slots(user=user, worker=worker_for(user=user), project=project).count()
    return counts


def assignment_for_user(*, assignment_id: int, user: Any) -> Assignment:
    """The user's own assignment (any status), with its item and project; anyone else's raises
    AssignmentNotFound, exactly like an id that does not exist."""
    found = (
        Assignment.objects.select_related("item__project", "item__domain", "decision")
        .filter(pk=assignment_id, assignee_id=user.pk)
        .first()
    )
    if found is None:
        raise AssignmentNotFound(f"No assignment {assignment_id} of yours.")
    return found


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


def presented_kind(kind: str) -> str:
    """What an assignee is told the work is: a gold check looks exactly like crowd work."""
    return AssignmentKind.CROWD.value if kind == AssignmentKind.GOLD_CHECK else str(kind)


def assignment_payload(assignment: Assignment) -> dict[str, Any]:
    """The API form of a claimed assignment: the item as its assignee may see it, and the lease.

    Crowd work (gold checks included) loses the project's hidden fields, and shows the model's prediction
    only when the project allows it; experts and reviewers see everything and why the item was routed.
    """
    item = assignment.item
    project = item.project
    kind = presented_kind(assignment.kind)
    crowd = kind == AssignmentKind.CROWD
    data, metadata = item.data, item.metadata
    if crowd:
        data, metadata, _ = without_hidden(item.data or {}, item.metadata or {}, project.hidden_fields or ())
    payload: dict[str, Any] = {
        "assignment": assignment.pk,
        "kind": kind,
        "project": project.slug,
        "classes": project.class_names,
        "decision_factors": list(project.decision_factors or ()),
        "rationale_required": bool(project.rationale_required or not crowd),
        "item": {
            "external_id": item.external_id,
            "data": data,
            "metadata": metadata,
            "domain": item.domain.path if item.domain_id else None,
            "language": item.language,
        },
        "status": assignment.status,
        "claimed_at": assignment.claimed_at.isoformat() if assignment.claimed_at else None,
        "lease_expires_at": assignment.lease_expires_at.isoformat() if assignment.lease_expires_at else None,
        "due_at": assignment.due_at.isoformat() if assignment.due_at else None,
    }
    if not crowd or project.show_suggestion_to_crowd:
        payload["item"]["predictions"] = [
            {"model_version": p.model_version, "probabilities": p.probabilities}
            for p in Prediction.objects.filter(item=item).order_by("created_at", "id")
        ]
    if not crowd:
        decision = assignment.decision
        payload["reasons"] = list(decision.reasons) if decision is not None else []
        if assignment.kind == AssignmentKind.REVIEW:
            payload["item"]["final_label"] = item.final_label
            payload["item"]["final_source"] = item.final_source
    return payload
