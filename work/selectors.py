"""Reads of work: who may claim what (the ORM's claimable_slots and its SQL twin queue_condition), the
claimer as a Worker, queue counts, a person's own assignments, and the API form of a claimed one."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from core.access import fields_hidden_from_work
from core.bulk import columns, model_from_row, prepared_cursor
from experts.availability import primary_subtag
from experts.models import Domain, Expert, Expertise, Role
from labeling.models import Annotation, GoldLabel, Item, Prediction, Project, ProjectMembership
from labeling.presentation import reasons_without_hidden, without_hidden
from routing.engine.types import (
    PolicyConfig,
)
from routing.inputs import routing_item_sql, routing_items_from_rows
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    EscalationPolicy,
    PolicyVersion,
)
from work.exceptions import AssignmentNotFound

# An open assignment is "due soon" when its SLA deadline is at most this far away.
DUE_SOON = dt.timedelta(hours=4)


# Which queue each roster role claims from. Gold checks are never queued: a claim creates them for the
# claimer (see work.claims.assignment_claim_next).
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
    """Unassigned open slots this worker may claim (their role's queue, in projects they are members of,
    coverage for experts), soonest deadline first, excluding items they hold, declined or annotated."""
    kinds = POOL_KINDS.get(worker.role, ()) if worker is not None else ()
    if not kinds:
        return Assignment.objects.none()
    qs = Assignment.objects.filter(
        status=AssignmentStatus.OFFERED,
        assignee__isnull=True,
        kind__in=kinds,
        project_id__in=ProjectMembership.objects.filter(user_id=user.pk).values("project_id"),
    )
    if project is not None:
        qs = qs.filter(project=project)
    if worker.role == Role.EXPERT:
        qs = qs.filter(_coverage(worker))
    held, annotated = items_held_or_done(user=user)
    return qs.exclude(item_id__in=held).exclude(item_id__in=annotated).order_by("due_at", "id")


def _like_prefix(value: str) -> str:
    """`value` as a LIKE pattern matching strings that start with it ("\\" escapes the wildcards)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def queue_condition(*, user: Any, worker: Worker, project: Project | None) -> tuple[str, str, list[Any]] | None:
    """(joins, where, params) selecting, as `q`, the unassigned slots of the worker's queue they may claim:
    the SQL twin of claimable_slots (tests compare the two); None when their role claims from no queue.

    The role's queue, the project, projects the user is a member of (an EXISTS probe on the membership's
    unique (project, user) index), nothing the user holds, declined or annotated, and for experts domain
    coverage (the path itself or below it) and language (primary subtag, either way round; an item without
    one matches everyone). The exclusions are NOT EXISTS probes by item, so a claim costs the same for a
    newcomer and for someone with years of history.
    """
    kinds = POOL_KINDS.get(worker.role, ())
    if not kinds:
        return None
    i, d, m = Item._meta.db_table, Domain._meta.db_table, ProjectMembership._meta.db_table
    untouched, untouched_params = _untouched_by(user, "q.item_id")
    # The queue's state is literal SQL (not parameters) so the partial claim index always matches.
    where = [
        f"q.status = '{AssignmentStatus.OFFERED.value}'",
        "q.assignee_id IS NULL",
        f"q.kind IN ({', '.join(['%s'] * len(kinds))})",
        f"EXISTS (SELECT 1 FROM {m} m WHERE m.project_id = q.project_id AND m.user_id = %s)",
        untouched,
    ]
    params: list[Any] = [*[str(k) for k in kinds], user.pk, *untouched_params]
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
    """Ids of the first `limit` items (by id) of the project with a gold label the user was never shown in
    any form (no assignment of theirs in any status, cancelled and expired included, and no annotation):
    the candidates for their gold check (one prepared statement)."""
    a, an = Assignment._meta.db_table, Annotation._meta.db_table
    unseen = (
        f"NOT EXISTS (SELECT 1 FROM {a} h WHERE h.item_id = g.item_id AND h.assignee_id = %s)"
        f" AND NOT EXISTS (SELECT 1 FROM {an} n WHERE n.item_id = g.item_id AND n.annotator_id = %s)"
    )
    params = [user.pk, user.pk]
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


def presented_kind(kind: str) -> str:
    """What an assignee is told the work is: a gold check looks exactly like crowd work."""
    return AssignmentKind.CROWD.value if kind == AssignmentKind.GOLD_CHECK else str(kind)


def assignment_payload(assignment: Assignment) -> dict[str, Any]:
    """The API form of a claimed assignment: the item as its assignee may see it, and the lease.

    The item keeps only the fields the project shows to this kind of work (core.access, the same rule as
    the labeling page); crowd work (gold checks included) shows the model's prediction only when the
    project allows it; experts and reviewers also see why the item was routed.
    """
    item = assignment.item
    project = item.project
    kind = presented_kind(assignment.kind)
    crowd = kind == AssignmentKind.CROWD
    hidden = fields_hidden_from_work(project.field_visibility or {}, work_kind=kind)
    data, metadata, _ = without_hidden(item.data or {}, item.metadata or {}, hidden)
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
        payload["reasons"] = reasons_without_hidden(decision.reasons, hidden) if decision is not None else []
        if assignment.kind == AssignmentKind.REVIEW:
            payload["item"]["final_label"] = item.final_label
            payload["item"]["final_source"] = item.final_source
    return payload
