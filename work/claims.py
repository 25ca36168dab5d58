"""The claim: a person's next assignment, offered to them by name or taken from their role's queue, with
a lease; sometimes a hidden gold check instead. See docs/assignments.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from experts.models import Role
from labeling.models import (
    Project,
)
from routing.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
)
from routing.offers import unit_hash
from work import claim_sql
from work import selectors as work_selectors

DEFAULT_LEASE_MINUTES = 30


# A claim retries this often when another claimer took the slot it picked between its read and its write.
CLAIM_ATTEMPTS = 8


# Gold checks: the claimer's draw is a hash of (GOLD_SEED, user id, how many claims they made before), so
# who gets a gold check when is reproducible (gold_draw); the item is drawn among
# the first GOLD_CANDIDATES gold items (by id) they have not seen.
GOLD_SEED = 8_675_309


GOLD_CANDIDATES = 50


def assignment_lease() -> dt.timedelta:
    """settings.ASSIGNMENT_LEASE_MINUTES (default 30), read at call time so tests and deployments can change it."""
    return dt.timedelta(minutes=float(getattr(settings, "ASSIGNMENT_LEASE_MINUTES", DEFAULT_LEASE_MINUTES)))


def _take(slot_id: int, *, user: Any, now: dt.datetime, lease_end: dt.datetime) -> bool:
    """Compare-and-set: the slot becomes the user's active assignment only if it is still offered, to
    nobody or to them; False when someone else got there first. (If the user already holds another slot of
    the item, the unique constraint aborts the transaction; the caller retries.) Hand-written, because
    every expert's claim of an offer runs it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Assignment._meta.db_table} SET status = %s, assignee_id = %s, claimed_at = %s,"
            " lease_expires_at = %s WHERE id = %s AND status = %s AND (assignee_id IS NULL OR assignee_id = %s)",
            [
                AssignmentStatus.ACTIVE.value,
                user.pk,
                connection.ops.adapt_datetimefield_value(now),
                connection.ops.adapt_datetimefield_value(lease_end),
                slot_id,
                AssignmentStatus.OFFERED.value,
                user.pk,
            ],
        )
        return cursor.rowcount == 1


def gold_draw(*, user_id: int, sequence: int) -> float:
    """The number in [0, 1) a crowd claim compares with its project's gold_check_rate (a gold check is due
    below it), `sequence` being how many claims the user made before (Expert.claims_made): a hash of
    (GOLD_SEED, user, sequence), so the draws are reproducible and independent from one claim to the next."""
    return unit_hash(GOLD_SEED, user_id, sequence)


def _gold_check(
    *,
    user: Any,
    slot: Assignment,
    sequence: int,
    now: dt.datetime,
    lease_end: dt.datetime,
    candidates: Sequence[int],
) -> Assignment:
    """A gold check in the slot's project for the user instead of the slot: one of the `candidates`
    (selectors.unseen_gold_items, not empty), handed out like any crowd work."""
    pick = int(unit_hash(GOLD_SEED, user.pk, sequence, "pick") * len(candidates))
    return Assignment.objects.create(
        item_id=candidates[pick],
        project_id=slot.project_id,
        assignee_id=user.pk,
        kind=AssignmentKind.GOLD_CHECK,
        status=AssignmentStatus.ACTIVE,
        claimed_at=now,
        lease_expires_at=lease_end,
        due_at=slot.due_at or now,
        created_at=now,
    )


_RETRY = object()


def _claim_offered(*, user: Any, project: Project | None, now: dt.datetime, lease_end: dt.datetime) -> Any:
    """The first slot offered to the user by name, claimed (its id); None when there is none."""
    own = work_selectors.offered_to(user=user, project=project).select_for_update(skip_locked=True, of=("self",))
    slot_id = own.values_list("id", flat=True).first()
    if slot_id is None:
        return None
    return slot_id if _take(slot_id, user=user, now=now, lease_end=lease_end) else _RETRY


def _savepoint_if_nested(run: Callable[[], Any]) -> Any:
    """Run a one-statement claim; inside someone else's transaction (a test, a batch) with a savepoint, so
    a unique-constraint race does not spoil that transaction. On its own it needs none."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return run()
    return run()


def assignment_claim_next(*, user: Any, project: Project | None = None,
    now: dt.datetime | None = None) -> Assignment | None:
    """Claim the user's next assignment (in `project`, or any) and start its lease; None when there is none.

    Order: slots offered to the user by name, soonest deadline first; then unassigned slots of their role's
    queue they may take (selectors.claimable_slots), soonest deadline first, while they hold fewer open
    assignments than their capacity. A crowd claim is sometimes a hidden gold check instead (gold_draw).
    Exclusive under concurrency: PostgreSQL skips rows other claimers have locked, and on every database
    the write is a compare-and-set that only succeeds on a still-free slot (else: try again).

    A crowd claim is ONE statement on PostgreSQL (claim_sql.crowd_claim: the roster entry read and its
    claim counter bumped, the head of the queue taken, the item returned) and no transaction; SQLite runs
    the same steps as three statements. Only when a gold check is due does it hand the slot back. The
    ORM's twin of the queue it takes from is selectors.claimable_slots, which tests compare it with.
    """
    now = now or timezone.now()
    lease_end = now + assignment_lease()
    try:
        worker, claimed = _savepoint_if_nested(
            lambda: claim_sql.crowd_claim(user=user, project=project, now=now, lease_end=lease_end)
        )
    except IntegrityError:
        # The user claimed another slot of the same item at the same moment (two tabs): go step by step.
        worker, claimed = claim_sql.claimer_after_conflict(user), None
    if worker is not None and worker.role == Role.CROWD:
        draw = gold_draw(user_id=user.pk, sequence=worker.claims_made)
        if claimed is not None:
            return _gold_instead(claimed, user=user, worker=worker, draw=draw, now=now, lease_end=lease_end)
        return _claim_from_queue(user=user, worker=worker, project=project, now=now, lease_end=lease_end, draw=draw)
    # Slots are offered by name only to experts (routing, declines, expiry, SLA breaches, the waiting queue).
    for _ in range(CLAIM_ATTEMPTS):
        with transaction.atomic():
            taken = _claim_offered(user=user, project=project, now=now, lease_end=lease_end)
        if taken is None:
            break
        if taken is not _RETRY:
            return _with_item(Assignment.objects.get(pk=taken), project)
    if worker is None:
        return None
    return _claim_from_queue(user=user, worker=worker, project=project, now=now, lease_end=lease_end, draw=None)


def _claim_from_queue(
    *,
    user: Any,
    worker: work_selectors.Worker,
    project: Project | None,
    now: dt.datetime,
    lease_end: dt.datetime,
    draw: float | None,
) -> Assignment | None:
    """The head of the worker's queue, taken in one statement (claim_sql.queue_claim); None when it took
    nothing (an empty queue for them, capacity reached, or every candidate held by other claimers). Tried
    again only when the user's other tab claimed a slot of the same item at the same moment."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            claimed = _savepoint_if_nested(
                lambda: claim_sql.queue_claim(user=user, worker=worker, project=project, now=now, lease_end=lease_end)
            )
        except IntegrityError:
            continue
        if claimed is None:
            return None
        if draw is None:
            return claimed.assignment
        return _gold_instead(claimed, user=user, worker=worker, draw=draw, now=now, lease_end=lease_end)
    return None


def _gold_instead(
    claimed: claim_sql.Claimed,
    *,
    user: Any,
    worker: work_selectors.Worker,
    draw: float,
    now: dt.datetime,
    lease_end: dt.datetime,
) -> Assignment:
    """The claimed crowd slot, or, when the draw falls under its project's gold_check_rate and the project
    has a gold item the person has not seen, a gold check instead: the slot goes back to its queue."""
    slot = claimed.assignment
    if slot.kind != AssignmentKind.CROWD or draw >= claimed.gold_check_rate:
        return slot
    # Looked for while the person still holds the slot, so the gold item is never the slot's own item.
    candidates = work_selectors.unseen_gold_items(user=user, project_id=slot.project_id, limit=GOLD_CANDIDATES)
    if not candidates:
        return slot
    try:
        with transaction.atomic():
            gold = _gold_check(
                user=user, slot=slot, sequence=worker.claims_made, now=now, lease_end=lease_end, candidates=candidates
            )
            Assignment.objects.filter(pk=slot.pk, assignee_id=user.pk, status=AssignmentStatus.ACTIVE).update(
                status=AssignmentStatus.OFFERED, assignee=None, claimed_at=None, lease_expires_at=None
            )
    except IntegrityError:
        # Their other tab took a slot of the gold item meanwhile: they keep the slot they claimed.
        return slot
    return _with_item(gold, slot.item.project)


def _with_item(assignment: Assignment, project: Project | None) -> Assignment:
    """The claimed assignment with its item, the item's domain and project loaded (the caller's project
    object when it is the item's)."""
    same = project is not None and project.pk == assignment.project_id
    assignment.item = work_selectors.item_for_work(item_id=assignment.item_id, project=project if same else None)
    return assignment
