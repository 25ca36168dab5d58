"""The work routing's decisions ask for: which slots an item needs (crowd labels, an expert, a review),
whom an expert slot is offered to (the roster ranked, loads counted), the slots that take over from
expired or declined ones, and the emails that tell experts. See docs/assignments.md."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from core.bulk import datetime_value, insert_objects, one_of, prepared_cursor
from experts.availability import DEFAULT_ROLES, ExpertSnapshot
from experts.models import Expert
from experts.ranking import Ranking, rank_experts
from labeling.models import (
    Annotation,
    FinalSource,
    Item,
    ItemStatus,
)
from routing import inputs, selectors
from routing.engine.types import Outcome, PolicyConfig

# The assignment errors are part of this module's interface: callers catch services.AssignmentNotFound etc.
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    RoutingDecision,
)

logger = logging.getLogger(__name__)


REVIEW_SAMPLE_SALT = "review-sample"


# Kinds routing manages on an item; reviews and gold checks have their own lives.
ROUTED_KINDS = (AssignmentKind.CROWD, AssignmentKind.EXPERT)


def unit_hash(*parts: Any) -> float:
    """A reproducible number in [0, 1) from `parts` (Python's hash() of a str changes per process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def review_sampled(*, item_id: int, rate: float) -> bool:
    """Whether a labeled item falls in the project's review sample: a fixed draw per item, so re-routing
    never samples it twice and a replay samples the same items."""
    return rate > 0 and unit_hash(REVIEW_SAMPLE_SALT, item_id) < rate


class Roster:
    """One snapshot of the expert roster for a batch of offers; each offer counts towards its expert's load,
    so a batch spreads work instead of piling it on whoever ranked first."""

    def __init__(self, snapshots: Iterable[ExpertSnapshot]):
        self._by_id = {s.expert_id: s for s in snapshots}

    @classmethod
    def load(cls) -> Roster:
        return cls(selectors.roster_for_ranking())

    @property
    def snapshots(self) -> list[ExpertSnapshot]:
        return list(self._by_id.values())

    def rank(
        self,
        *,
        item: Item,
        now: dt.datetime,
        due_at: dt.datetime,
        already_labeled_by: Iterable[int] = (),
        exclude_user_ids: Iterable[int] = (),
    ) -> Ranking:
        return rank_experts(
            self._by_id.values(),
            domain=item.domain.path if item.domain_id else "",
            language=item.language,
            now=now,
            sla_deadline=due_at,
            already_labeled_by=frozenset(already_labeled_by),
            exclude_user_ids=frozenset(exclude_user_ids),
        )

    def took(self, expert_id: int) -> None:
        snapshot = self._by_id[expert_id]
        self._by_id[expert_id] = dataclasses.replace(snapshot, open_assignments=snapshot.open_assignments + 1)


def exclusions(item_ids: Sequence[int]) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """For expert offers on these items (three queries, and one per project): who may not be offered one
    (declined it, let a lease on it expire, holds an open slot on it, or is not a member of its project), and
    who already labeled it."""
    excluded: dict[int, set[int]] = defaultdict(set)
    labeled: dict[int, set[int]] = defaultdict(set)
    if not item_ids:
        return excluded, labeled
    # An expert is offered only items of projects they are a member of: the rule the claim applies
    # (work.selectors.claimable_slots), so an offer by name never goes where the queue would not.
    project_of = dict(Item.objects.filter(pk__in=item_ids).values_list("id", "project_id"))
    outsiders = {
        project_id: set(
            Expert.objects.filter(role__in=DEFAULT_ROLES)
            .exclude(user__project_memberships__project_id=project_id)
            .values_list("user_id", flat=True)
        )
        for project_id in set(project_of.values())
    }
    for item_id, project_id in project_of.items():
        excluded[item_id] |= outsiders[project_id]
    rows = Assignment.objects.filter(item_id__in=item_ids, assignee__isnull=False).filter(
        Q(kind=AssignmentKind.EXPERT, status__in=[AssignmentStatus.DECLINED, AssignmentStatus.EXPIRED])
        | Q(status__in=OPEN_ASSIGNMENT_STATUSES)
    )
    for item_id, user_id in rows.values_list("item_id", "assignee_id"):
        excluded[item_id].add(user_id)
    for item_id, user_id in Annotation.objects.filter(item_id__in=item_ids).values_list("item_id", "annotator_id"):
        labeled[item_id].add(user_id)
    return excluded, labeled


EMAILS_TASK = "routing.tasks.emails_send"


def email_on_commit(messages: Mapping[int, tuple[str, str]], *, respect_preference: bool = True) -> None:
    """Queue emails to users (user id -> (subject, body)) for a background worker once the transaction
    commits, so a rolled-back offer sends nothing and no request waits on the mail server. Skips users
    without an address, and (unless told otherwise) those who turned emails off."""
    if not messages:
        return
    experts = Expert.objects.filter(user_id__in=list(messages)).select_related("user")
    if respect_preference:
        experts = experts.filter(email_notifications=True)
    outbox = [(e.user.email, *messages[e.user_id]) for e in experts if e.user.email]
    if outbox:
        transaction.on_commit(lambda: async_task(EMAILS_TASK, outbox, task_name="emails"))


def emails_send(outbox: Iterable[Sequence[str]]) -> int:
    """Send (address, subject, body) emails one by one; returns how many went out."""
    sent = 0
    for address, subject, body in outbox:
        try:
            send_mail(subject, body, None, [address])
            sent += 1
        except Exception:
            # One bad address must not stop the others, and raising would make django-q retry the whole
            # batch and email the ones already sent twice; the queue page shows the work regardless.
            logger.exception("could not email %s", address)
    return sent


def offer_emails(slots: Iterable[Assignment]) -> dict[int, tuple[str, str]]:
    by_user: dict[int, list[Assignment]] = defaultdict(list)
    for slot in slots:
        offered_to_expert = slot.kind == AssignmentKind.EXPERT and slot.status == AssignmentStatus.OFFERED
        if slot.assignee_id is not None and offered_to_expert:
            by_user[slot.assignee_id].append(slot)
    messages = {}
    for user_id, offered in by_user.items():
        due = min(s.due_at for s in offered if s.due_at is not None)
        n = len(offered)
        messages[user_id] = (
            f"{n} new expert assignment{'s' if n != 1 else ''} for you",
            (
                f"You have been offered {n} item{'s' if n != 1 else ''} to label; the first is due by "
                f"{due:%Y-%m-%d %H:%M} UTC. Open your queue in the labeling workbench to start."
            ),
        )
    return messages


@dataclass
class WorkPlan:
    """What one chunk's decisions do to assignments: slots to cancel and slots to create."""

    cancel: list[int] = field(default_factory=list)  # whatever their state, if still open
    withdraw: list[int] = field(default_factory=list)  # only if nobody has started them meanwhile
    # (decision row, kind, assignee user id or None, due_at); the row is saved before the slots are.
    create: list[tuple[RoutingDecision, str, int | None, dt.datetime]] = field(default_factory=list)


def work_plan(
    *, loaded: Sequence[inputs.RouteInput], rows: Sequence[RoutingDecision], configs: Sequence[PolicyConfig], now
) -> WorkPlan:
    """Decide the work for one chunk of decisions, in a fixed number of queries:

    * ACCEPT cancels the item's open crowd and expert slots, and asks a reviewer to look when an expert's
      label was accepted or the item falls in the project's review sample (once per item);
    * CROWD keeps `labels_requested` crowd slots open (creating the missing ones) and withdraws offered
      expert and review slots;
    * EXPERT withdraws offered crowd and review slots and, unless an expert slot is already open, ranks the
      roster (one snapshot per chunk, loads counted as offers are made), stores the ranking on the decision
      and offers the slot to the best expert, or leaves it unassigned in the experts' queue when nobody is
      eligible. Someone who declined or let a lease on the item expire is not offered it again.

    Active slots of a kind no longer wanted are left to finish: their label still counts.
    """
    plan = WorkPlan()
    if not rows:
        return plan
    open_slots = {r.item.id: r.open_slots for r in loaded}
    reviewed = {r.item.id for r in loaded if r.reviewed}
    wanting_expert = [
        row.item_id
        for row in rows
        if row.outcome == Outcome.EXPERT and not any(k == AssignmentKind.EXPERT for _, k, _ in open_slots[row.item_id])
    ]
    roster = Roster.load() if wanting_expert else None
    excluded, _ = exclusions(wanting_expert)

    for r, row, config in zip(loaded, rows, configs):
        slots = open_slots[row.item_id]
        due_at = now + dt.timedelta(hours=config.sla_hours)
        if row.outcome == Outcome.ACCEPT:
            plan.cancel += [slot_id for slot_id, kind, _ in slots if kind in ROUTED_KINDS]
            wants_review = row.final_source == FinalSource.EXPERT or review_sampled(
                item_id=row.item_id, rate=r.item.project.review_sample_rate
            )
            if wants_review and row.item_id not in reviewed:
                plan.create.append((row, AssignmentKind.REVIEW, None, due_at))
            continue
        unwanted = (AssignmentKind.EXPERT, AssignmentKind.REVIEW) if row.outcome == Outcome.CROWD else (
            AssignmentKind.CROWD,
            AssignmentKind.REVIEW,
        )
        plan.withdraw += [
            slot_id for slot_id, kind, status in slots if kind in unwanted and status == AssignmentStatus.OFFERED
        ]
        if row.outcome == Outcome.CROWD:
            have = sum(1 for _, kind, _ in slots if kind == AssignmentKind.CROWD)
            plan.create += [(row, AssignmentKind.CROWD, None, due_at)] * max(0, row.labels_requested - have)
        elif row.item_id in wanting_expert:
            assert roster is not None
            ranking = roster.rank(
                item=r.item,
                now=now,
                due_at=due_at,
                already_labeled_by={a.annotator_id for a in r.item_input.annotations},
                exclude_user_ids=excluded[row.item_id],
            )
            row.expert_ranking = ranking.to_dict()
            best = ranking.best
            if best is not None:
                roster.took(best.expert_id)
            plan.create.append((row, AssignmentKind.EXPERT, best.user_id if best else None, due_at))
    return plan


def work_apply(plan: WorkPlan, *, now: dt.datetime) -> list[Assignment]:
    """Carry out a plan once its decision rows are saved: one update for the slots to cancel, one for those
    to withdraw, one insert for the new ones, offer emails on commit."""
    # Prepared statements: an accepted label cancels its item's other slots on many a submit. A slot to
    # withdraw that someone claimed since the plan read it stays theirs.
    for slot_ids, statuses in ((plan.cancel, OPEN_ASSIGNMENT_STATUSES), (plan.withdraw, (AssignmentStatus.OFFERED,))):
        if not slot_ids:
            continue
        of_slots, params = one_of("id", sorted(slot_ids))
        listed = "', '".join(s.value for s in statuses)
        with prepared_cursor() as cursor:
            cursor.execute(
                f"UPDATE {Assignment._meta.db_table}"
                f" SET status = '{AssignmentStatus.CANCELLED.value}', completed_at = %s"
                f" WHERE {of_slots} AND status IN ('{listed}')",
                [datetime_value(now), *params],
            )
    if not plan.create:  # most submits: the item's slots are already right
        return []
    slots = insert_objects([
        Assignment(
            item_id=row.item_id,
            project_id=row.item.project_id,
            decision=row,
            kind=kind,
            assignee_id=assignee_id,
            status=AssignmentStatus.OFFERED,
            due_at=due_at,
            created_at=now,
        )
        for row, kind, assignee_id, due_at in plan.create
    ])
    email_on_commit(offer_emails(slots))
    return slots


def replacements(
    slots: Sequence[Assignment], *, now: dt.datetime, roster: Roster | None = None
) -> tuple[list[Assignment], dict[int, Ranking]]:
    """Fresh slots taking over from `slots` (expired or declined, already saved as such), unsaved: the same
    item, kind, decision and SLA deadline. Crowd and review slots return to their queue; expert slots are
    offered to the next best expert (the ranking excludes everyone who declined the item or let it expire,
    and whoever labeled it), or wait unassigned. Gold checks are not replaced: they were drawn for one person.
    A crowd slot is not replaced once its item has left crowd review (escalated or labeled meanwhile): its
    label is no longer asked for. Returns the slots and, by old slot id, the rankings made."""
    slots = [
        s for s in slots if s.kind != AssignmentKind.CROWD or s.item.status == ItemStatus.IN_CROWD_REVIEW
    ]
    expert_items = [s.item_id for s in slots if s.kind == AssignmentKind.EXPERT]
    if expert_items and roster is None:
        roster = Roster.load()
    excluded, labeled = exclusions(expert_items)
    fresh: list[Assignment] = []
    rankings: dict[int, Ranking] = {}
    for old in slots:
        if old.kind == AssignmentKind.GOLD_CHECK:
            continue
        assignee_id = None
        if old.kind == AssignmentKind.EXPERT:
            assert roster is not None
            due_at = old.due_at or now
            ranking = roster.rank(
                item=old.item,
                now=now,
                due_at=due_at,
                already_labeled_by=labeled[old.item_id],
                exclude_user_ids=excluded[old.item_id] | {old.assignee_id},
            )
            rankings[old.pk] = ranking
            if ranking.best is not None:
                assignee_id = ranking.best.user_id
                roster.took(ranking.best.expert_id)
                # The same person is not offered two slots of one item in this batch.
                excluded[old.item_id].add(assignee_id)
        fresh.append(successor(old, assignee_id=assignee_id, now=now))
    return fresh, rankings


def successor(old: Assignment, *, assignee_id: int | None, now: dt.datetime) -> Assignment:
    """An unsaved slot taking over from `old`: the same item, kind, decision and SLA deadline, offered anew."""
    return Assignment(
        item_id=old.item_id,
        project_id=old.project_id,
        kind=old.kind,
        decision_id=old.decision_id,
        assignee_id=assignee_id,
        status=AssignmentStatus.OFFERED,
        due_at=old.due_at,
        created_at=now,
    )


def ranking_summary(ranking: Ranking | None) -> dict[str, Any]:
    if ranking is None:
        return {}
    best = ranking.best
    return {
        "offered_to": best.user_id if best else None,
        "explanation": ranking.explanation,
        "candidates": [c.user_id for c in ranking.candidates],
    }
