"""The claim's hand-written statements (writes, called by work.claims.assignment_claim_next).

Every `next` of every annotator runs these, so they are built for one round trip: PostgreSQL bumps the
claimer's claim counter, takes the head of their queue and returns the slot with its item in ONE prepared
statement (data-modifying CTEs); SQLite, which has neither those nor row locks, runs the same steps as
separate statements, each atomic, one writer at a time. The conditions are selectors.queue_condition's,
which tests compare with the ORM's claimable_slots.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from core.bulk import columns, datetime_value, model_from_row, prepared_cursor
from experts.models import Expert, Role
from labeling.models import Item, Project
from routing.models import OPEN_ASSIGNMENT_STATUSES, Assignment, AssignmentStatus
from work import selectors as work_selectors


@dataclass(frozen=True)
class Claimed:
    """A slot just claimed, with its item loaded, and its project's live gold_check_rate (0 without a policy)."""

    assignment: Assignment
    gold_check_rate: float


def crowd_claim(
    *, user: Any, project: Project | None, now: dt.datetime, lease_end: dt.datetime
) -> tuple[work_selectors.Worker | None, Claimed | None]:
    """Bump the user's claim counter and, when they are an active crowd annotator, claim the head of the
    crowd queue: (their roster entry as a Worker with `claims_made` as it was before, the claim or None).
    (None, None) when they are not an active roster member; (worker, None) for other roles (nothing is
    claimed) and when nothing could be taken."""
    if connection.vendor != "postgresql":
        worker = _worker_bumped(user)
        if worker is None or worker.role != Role.CROWD:
            return worker, None
        return worker, queue_claim(user=user, worker=worker, project=project, now=now, lease_end=lease_end)
    sql, template = _crowd_claim_statement(project is not None)
    given = {_USER: user.pk, _PROJECT: project.pk if project is not None else None, _NOW: now, _LEASE_END: lease_end}
    with prepared_cursor() as cursor:
        cursor.execute(sql, [given[p] if type(p) is _Given else p for p in template])
        row = cursor.fetchone()
    if row is None:
        return None, None
    worker = work_selectors.worker_from_row(user=user, row=_before_bump(row[:_N_WORKER]))
    rest = row[_N_WORKER:]
    if rest[0] is None:  # the claimed row's id: nothing taken
        return worker, None
    return worker, _claimed_from_row(rest, project)


class _Given:
    """Stands for a value given per call in a statement built once (_crowd_claim_statement)."""


_USER, _PROJECT, _NOW, _LEASE_END = _Given(), _Given(), _Given(), _Given()
_N_WORKER = len(work_selectors.WORKER_COLUMNS.split(","))


@dataclass(frozen=True)
class _Standing:
    pk: Any


@functools.cache
def _crowd_claim_statement(in_project: bool) -> tuple[str, tuple[Any, ...]]:
    """crowd_claim's PostgreSQL statement (in one project, or in any) and its parameters, the per-call ones
    as _Given markers: the same for every claimer, so built once per process rather than on every claim."""
    user = _Standing(pk=_USER)
    # The crowd's queue needs nothing of the roster entry but the role and capacity, which the statement reads.
    crowd = work_selectors.Worker(user_id=0, role=Role.CROWD, capacity=0, expertise=(), languages=())
    project = _Standing(pk=_PROJECT) if in_project else None
    update, params = _claim_update(
        user=user,
        worker=crowd,
        project=project,
        now=_NOW,
        lease_end=_LEASE_END,
        capacity="(SELECT capacity FROM w)",
        # Only a crowd annotator takes from the crowd's queue; anyone else's call locks nothing.
        guard=f"(SELECT role FROM w) = '{Role.CROWD.value}'",
    )
    select, joins = work_selectors.item_for_work_sql(project, outer=True)
    sql = (
        f"WITH w AS ({_BUMP} RETURNING {work_selectors.WORKER_COLUMNS}),"
        f" claimed AS ({update} RETURNING {columns(Assignment)})"
        f" SELECT w.*, {columns(Assignment, 'claimed')}, {select}, {work_selectors.gold_rate_sql('claimed.project_id')}"
        f" FROM w LEFT JOIN claimed ON TRUE LEFT JOIN {Item._meta.db_table} it ON it.id = claimed.item_id{joins}"
    )
    return sql, (_USER, *params)


def queue_claim(
    *, user: Any, worker: work_selectors.Worker, project: Project | None, now: dt.datetime, lease_end: dt.datetime
) -> Claimed | None:
    """Claim the head of the worker's queue in one statement (plus a read of the item on SQLite) and return
    it with its item (pass the item's project when the caller holds it), or None when nothing was taken:
    the queue is empty for them, they are at capacity, or someone else holds every candidate row
    (PostgreSQL skips locked rows). The caller finds out which the slow way."""
    update, params = _claim_update(user=user, worker=worker, project=project, now=now, lease_end=lease_end)
    if update is None:
        return None
    params += [worker.capacity, worker.capacity]
    if connection.vendor != "postgresql":
        # SQLite's RETURNING cannot join: the item (and the rate) is a second statement there.
        with prepared_cursor() as cursor:
            cursor.execute(f"{update} RETURNING {columns(Assignment)}", params)
            row = cursor.fetchone()
            if row is None:
                return None
            assignment = model_from_row(Assignment, row)
            select, joins = work_selectors.item_for_work_sql(project)
            cursor.execute(
                f"SELECT {select}, {work_selectors.gold_rate_sql('it.project_id')} FROM {Item._meta.db_table} it{joins}"
                " WHERE it.id = %s",
                [assignment.item_id],
            )
            rest = cursor.fetchone()
        assignment.item = work_selectors.item_from_row(rest[:-1], project)
        return Claimed(assignment=assignment, gold_check_rate=float(rest[-1] or 0.0))
    select, joins = work_selectors.item_for_work_sql(project)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"WITH claimed AS ({update} RETURNING {columns(Assignment)})"
            f" SELECT {columns(Assignment, 'claimed')}, {select}, {work_selectors.gold_rate_sql('claimed.project_id')}"
            f" FROM claimed JOIN {Item._meta.db_table} it ON it.id = claimed.item_id{joins}",
            params,
        )
        row = cursor.fetchone()
    return _claimed_from_row(row, project) if row is not None else None


def _claim_update(
    *,
    user: Any,
    worker: work_selectors.Worker,
    project: Project | None,
    now: dt.datetime,
    lease_end: dt.datetime,
    capacity: str = "%s",
    guard: str = "",
) -> tuple[str | None, list[Any]]:
    """The claim's UPDATE (no RETURNING) and its parameters; `capacity` is SQL giving the claimer's capacity
    (twice: parameters follow the returned ones when it is "%s"), `guard` an extra condition on taking
    anything at all. (None, []) for a role with no queue.

    The head of the queue is locked and skipped by other claimers on PostgreSQL; the write is a
    compare-and-set on a still-free slot; open slots are counted only up to the capacity, so the check
    costs no more for someone holding many."""
    condition = work_selectors.queue_condition(user=user, worker=worker, project=project)
    if condition is None:
        return None, []
    joins, where, params = condition
    if guard:
        where = f"{guard} AND {where}"
    a = Assignment._meta.db_table
    lock = " FOR UPDATE OF q SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    open_statuses = "', '".join(s.value for s in OPEN_ASSIGNMENT_STATUSES)
    sql = (
        f"UPDATE {a} SET status = '{AssignmentStatus.ACTIVE.value}', assignee_id = %s, claimed_at = %s,"
        f" lease_expires_at = %s"
        f" WHERE id = (SELECT q.id FROM {a} q{joins} WHERE {where} ORDER BY q.due_at, q.id LIMIT 1{lock})"
        f" AND status = '{AssignmentStatus.OFFERED.value}' AND assignee_id IS NULL"
        f" AND (SELECT COUNT(*) FROM (SELECT 1 FROM {a} c WHERE c.assignee_id = %s AND c.status IN ('{open_statuses}')"
        f" LIMIT {capacity}) held) < {capacity}"
    )
    return sql, [user.pk, datetime_value(now), datetime_value(lease_end), *params, user.pk]


_BUMP = (
    f"UPDATE {Expert._meta.db_table} SET claims_made = claims_made + 1 WHERE user_id = %s AND active"
)


def _worker_bumped(user: Any) -> work_selectors.Worker | None:
    """The claimer's roster entry, its claim counter bumped in the same statement (`claims_made` as it was
    before); None when they are not an active roster member."""
    with prepared_cursor() as cursor:
        cursor.execute(f"{_BUMP} RETURNING {work_selectors.WORKER_COLUMNS}", [user.pk])
        row = cursor.fetchone()
    return work_selectors.worker_from_row(user=user, row=_before_bump(row) if row is not None else None)


def claimer_after_conflict(user: Any) -> work_selectors.Worker | None:
    """The claimer after crowd_claim failed on a unique-constraint race, counted as that claim: PostgreSQL
    rolled the whole statement back, counter included, so it is bumped now; on SQLite the bump was its own
    statement and stands. Either way `claims_made` is the count before this claim, so no draw repeats."""
    if connection.vendor == "postgresql":
        return _worker_bumped(user)
    worker = work_selectors.worker_for(user=user)
    return dataclasses.replace(worker, claims_made=worker.claims_made - 1) if worker is not None else None


def _before_bump(row: Sequence[Any]) -> tuple[Any, ...]:
    """A WORKER_COLUMNS row read after the bump, with claims_made (the last column) as it was before."""
    return (*row[:-1], row[-1] - 1)


def _claimed_from_row(row: Sequence[Any], project: Project | None) -> Claimed:
    """Claimed from the claimed slot's columns, the item_for_work_sql columns and the gold rate, in order."""
    n = len(Assignment._meta.concrete_fields)
    assignment = model_from_row(Assignment, row[:n])
    assignment.item = work_selectors.item_from_row(row[n:-1], project)
    return Claimed(assignment=assignment, gold_check_rate=float(row[-1] or 0.0))
