"""The scheduled jobs that keep assignments moving: expired leases, expert SLA breaches (to the on-call
expert), crowd offers nobody took (routed again, to an expert), and the experts' waiting queue."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from core.models import AuditEvent
from experts.availability import on_call
from experts.models import Expert
from experts.selectors import on_call_rotations
from labeling.models import (
    Item,
)
from routing.engine.types import Stage
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
)
from routing.offers import Roster, email_on_commit, exclusions, offer_emails, ranking_summary, replacements, successor
from routing.services import items_route

# Jobs handle at most this many assignments per run, so one run stays short; the next run takes the rest.
JOB_BATCH = 2000


def assignments_expire(*, now: dt.datetime | None = None) -> int:
    """Active assignments whose lease has run out become expired, and a fresh slot takes each one's place
    (`replacements`: crowd and review slots return to their queue, expert slots go to the next best expert).
    Returns how many expired. Submitting an expired assignment answers 409."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=AssignmentStatus.ACTIVE, lease_expires_at__lte=now)
            .select_related("item__domain")
            .order_by("lease_expires_at", "id")[:JOB_BATCH]
        )
        if not stale:
            return 0
        ids = [s.pk for s in stale]
        Assignment.objects.filter(id__in=ids, status=AssignmentStatus.ACTIVE).update(
            status=AssignmentStatus.EXPIRED, completed_at=now
        )
        fresh, rankings = replacements(stale, now=now)
        fresh = Assignment.objects.bulk_create(fresh)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                action="assignment.expire",
                object_type="routing.Assignment",
                object_id=str(s.pk),
                data={
                    "item_id": s.item_id,
                    "kind": s.kind,
                    "assignee_id": s.assignee_id,
                    "lease_expires_at": s.lease_expires_at.isoformat(),
                    **ranking_summary(rankings.get(s.pk)),
                },
            )
            for s in stale
        )
        email_on_commit(offer_emails(fresh))
    return len(stale)


def _on_call_user_ids(domain_paths: Iterable[str], *, now: dt.datetime) -> dict[str, tuple[int, str] | None]:
    """domain path -> (user id, rotation name) of whoever is on call for it now: the most specific
    rotation covering the domain that has someone on call; None when no rotation does."""
    found: dict[str, tuple[int, str] | None] = {}
    expert_ids: dict[str, tuple[int, str]] = {}
    for path in set(domain_paths):
        found[path] = None
        for rotation in on_call_rotations(path):
            expert_id = on_call(rotation, now)
            if expert_id is not None:
                expert_ids[path] = (expert_id, rotation.name)
                break
    users = dict(Expert.objects.filter(id__in=[e for e, _ in expert_ids.values()]).values_list("id", "user_id"))
    for path, (expert_id, rotation) in expert_ids.items():
        found[path] = (users[expert_id], rotation)
    return found


def sla_breaches_handle(*, now: dt.datetime | None = None) -> int:
    """Expert slots still open past their SLA deadline (offered, active, or waiting unassigned) go to the
    on-call expert of the item's domain: the old slot is cancelled, a new one is offered to them with the same
    deadline, they are emailed (on-call duty overrides their email preference), and the move is audited.
    Slots already with the on-call expert, or whose on-call expert labeled or holds the item, stay. Returns
    how many were reassigned."""
    now = now or timezone.now()
    with transaction.atomic():
        breached = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(kind=AssignmentKind.EXPERT, status__in=OPEN_ASSIGNMENT_STATUSES, due_at__lte=now)
            .select_related("item__domain")
            .order_by("due_at", "id")[:JOB_BATCH]
        )
        if not breached:
            return 0
        on_call_by_domain = _on_call_user_ids(
            (s.item.domain.path if s.item.domain_id else "" for s in breached), now=now
        )
        excluded, labeled = exclusions([s.item_id for s in breached])
        moved: list[tuple[Assignment, Assignment, str]] = []
        for slot in breached:
            target = on_call_by_domain[slot.item.domain.path if slot.item.domain_id else ""]
            if target is None:
                continue
            user_id, rotation = target
            if user_id == slot.assignee_id or user_id in excluded[slot.item_id] | labeled[slot.item_id]:
                continue
            excluded[slot.item_id].add(user_id)
            # An expert slot (the query above), so its successor is one too.
            moved.append((slot, successor(slot, assignee_id=user_id, now=now), rotation))
        if not moved:
            return 0
        Assignment.objects.filter(id__in=[old.pk for old, _, _ in moved]).update(
            status=AssignmentStatus.CANCELLED, completed_at=now
        )
        Assignment.objects.bulk_create([fresh for _, fresh, _ in moved])
        AuditEvent.objects.bulk_create(
            AuditEvent(
                action="assignment.sla_breach",
                object_type="routing.Assignment",
                object_id=str(old.pk),
                data={
                    "item_id": old.item_id,
                    "due_at": old.due_at.isoformat(),
                    "previous_assignee_id": old.assignee_id,
                    "previous_status": old.status,
                    "on_call_user_id": fresh.assignee_id,
                    "rotation": rotation,
                    "replacement_id": fresh.pk,
                },
            )
            for old, fresh, rotation in moved
        )
        by_user: dict[int, int] = Counter(fresh.assignee_id for _, fresh, _ in moved)
        email_on_commit(
            {
                user_id: (
                    f"On call: {n} overdue expert assignment{'s' if n != 1 else ''}",
                    (
                        f"{n} escalated item{'s' if n != 1 else ''} passed {'their' if n != 1 else 'its'} SLA "
                        "deadline and were reassigned to you as the on-call expert. Open your queue in the "
                        "labeling workbench."
                    ),
                )
                for user_id, n in by_user.items()
            },
            respect_preference=False,
        )
    return len(moved)


def crowd_breaches_escalate(*, now: dt.datetime | None = None) -> int:
    """Crowd offers still unclaimed past their SLA deadline expire, and their items are routed again (stage
    "crowd_overdue"): routing reads an expired unclaimed crowd offer as the engine input `crowd_overdue`
    (routing.inputs.crowd_overdue), so where the policy still wants the crowd an expert is asked instead
    (offered to the best-ranked one, or waiting in the experts' queue) and the item's other crowd offers
    are withdrawn; claimed crowd slots finish (their lease bounds them). Every later routing reads the same,
    so the item does not drift back to the crowd. Without this, a slot nobody eligible is left to take
    (everyone in the crowd has labeled the item) would wait forever. Returns how many items were routed."""
    now = now or timezone.now()
    overdue = Assignment.objects.filter(
        kind=AssignmentKind.CROWD, status=AssignmentStatus.OFFERED, assignee__isnull=True, due_at__lte=now
    )
    with transaction.atomic():
        candidates = sorted(set(overdue.order_by("due_at", "id").values_list("item_id", flat=True)[:JOB_BATCH]))
        if not candidates:
            return 0
        # Items first, then their slots: the order a submit locks in, so the two never deadlock.
        list(Item.objects.select_for_update().filter(id__in=candidates).order_by("id").values_list("id", flat=True))
        if not overdue.filter(item_id__in=candidates).update(status=AssignmentStatus.EXPIRED, completed_at=now):
            return 0
        # Only the items whose offers this run expired (someone may have claimed the last one meanwhile).
        item_ids = sorted(set(
            Assignment.objects.filter(
                item_id__in=candidates, kind=AssignmentKind.CROWD, status=AssignmentStatus.EXPIRED,
                assignee__isnull=True, completed_at=now,
            ).values_list("item_id", flat=True)
        ))
        return len(items_route(item_ids=item_ids, stage=Stage.CROWD_OVERDUE, now=now).decisions)


def waiting_assign(*, now: dt.datetime | None = None) -> int:
    """Offer unassigned expert slots, soonest deadline first, each to the best-ranked qualified expert who
    is on shift right now and below capacity (one roster snapshot; loads counted as offers are made).
    Returns how many were offered."""
    now = now or timezone.now()
    with transaction.atomic():
        waiting = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(kind=AssignmentKind.EXPERT, status=AssignmentStatus.OFFERED, assignee__isnull=True)
            .select_related("item__domain")
            .order_by("due_at", "id")[:JOB_BATCH]
        )
        if not waiting:
            return 0
        roster = Roster.load()
        excluded, labeled = exclusions([s.item_id for s in waiting])
        offered: list[Assignment] = []
        events: list[AuditEvent] = []
        for slot in waiting:
            ranking = roster.rank(
                item=slot.item,
                now=now,
                due_at=slot.due_at or now,
                already_labeled_by=labeled[slot.item_id],
                exclude_user_ids=excluded[slot.item_id],
            )
            on_shift = [c for c in ranking.candidates if c.components.wait_hours == 0]
            if not on_shift:
                continue
            best = on_shift[0]
            updated = Assignment.objects.filter(
                pk=slot.pk, status=AssignmentStatus.OFFERED, assignee__isnull=True
            ).update(assignee_id=best.user_id)
            if updated != 1:
                continue
            roster.took(best.expert_id)
            excluded[slot.item_id].add(best.user_id)
            slot.assignee_id = best.user_id
            offered.append(slot)
            events.append(
                AuditEvent(
                    action="assignment.offer",
                    object_type="routing.Assignment",
                    object_id=str(slot.pk),
                    data={"item_id": slot.item_id, **ranking_summary(ranking), "offered_to": best.user_id},
                )
            )
        AuditEvent.objects.bulk_create(events)
        email_on_commit(offer_emails(offered))
    return len(offered)
