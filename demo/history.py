"""The demo's past: several weeks of simulated work, made through the real services (ingest, claim, submit,
decline, review, the scheduled jobs), so the queues, item trails and dashboards have something to show from
the first login, and the weekly charts (agreement, time to label, drift, SLA) have a shape.

Items arrive in weekly batches (HISTORY_WEEKS of them, then the rest "today", a few hours before the
seeding). Each past week the crowd, the experts and the reviewer work through the backlog in a few rounds,
a working day apart, at a simulated clock (demo.clock): every timestamp, SLA deadline and ranking (who is
on shift) is that day's. Today's batch gets some crowd work and no expert work, so every expert finds a full
queue when the demo starts. Who labels what, and how well, is decided by a seeded numpy generator from
demo.datasets' and demo.workers' parameters; the services decide everything else (routing after each
label, expert ranking, gold checks, reviews), exactly as they would for people.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo import datasets as demo
from demo import workers
from demo.clock import SimulatedClock
from labeling.models import GoldLabel, Item, ItemStatus, Project
from routing.models import OPEN_ASSIGNMENT_STATUSES, AssignmentKind
from routing.reliabilities import accuracy_refresh
from work import claims, jobs, submissions

# Pretend times spent, in milliseconds, drawn uniformly: quick crowd labels, slower expert judgements.
CROWD_TIME_MS = (2_500, 30_000)
EXPERT_TIME_MS = (20_000, 110_000)
# Pauses between one person's labels (minutes, drawn uniformly): the history's pace within a day.
CROWD_PAUSE_MINUTES = (0.5, 4.0)
EXPERT_PAUSE_MINUTES = (2.0, 15.0)

# Weeks of history before today, and the share of the items that arrive today instead.
HISTORY_WEEKS = 8
TODAY_SHARE = 0.4
# Each week's batch arrives on Tuesday at 09:00 UTC; work follows in rounds at 10:00 UTC on three days.
ARRIVAL = dt.timedelta(days=1, hours=9)
ROUND_STARTS = (dt.timedelta(days=1, hours=10), dt.timedelta(days=2, hours=10), dt.timedelta(days=3, hours=10))
# Today's batch arrives this long before the seeding, and the crowd works on it in the meantime.
TODAY_LEAD = dt.timedelta(hours=6)


@dataclass(frozen=True)
class HistorySummary:
    annotations: Mapping[str, int]  # assignment kind -> labels submitted
    declines: int
    reviews: Mapping[str, int]  # verdict -> count
    weeks: int  # weeks of history before today's batch
    first_arrival: dt.datetime | None  # when the first batch arrived


def _rng(seed: int, slug: str) -> np.random.Generator:
    # One stream per project, so capping or adding a project never reshuffles another's history.
    return np.random.default_rng([seed, *slug.encode()])


def history_start(now: dt.datetime, weeks: int = HISTORY_WEEKS) -> dt.datetime:
    """Monday 00:00 UTC, `weeks` weeks before the Monday of `now`'s week."""
    today = now.astimezone(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    return dt.datetime.combine(monday - dt.timedelta(weeks=weeks), dt.time.min, tzinfo=dt.UTC)


def weekly_batches(
    rows: Sequence[Mapping[str, Any]], *, weeks: int = HISTORY_WEEKS, today_share: float = TODAY_SHARE
) -> list[list[Mapping[str, Any]]]:
    """`rows` in `weeks` + 1 consecutive batches, in their order: the past weeks share evenly what
    `today_share` leaves, the last batch is today's (pure). Every row is in exactly one batch."""
    today = math.ceil(len(rows) * today_share) if rows else 0
    past = len(rows) - today
    cuts = [round(past * k / weeks) for k in range(weeks + 1)] + [len(rows)]
    return [list(rows[cuts[k]:cuts[k + 1]]) for k in range(weeks + 1)]


@dataclass
class _Counts:
    submitted: Counter[str]
    reviews: Counter[str]
    declines: int = 0


class _History:
    """One project's simulated past; every action advances the clock by the time it takes."""

    def __init__(self, *, project: Project, spec: demo.DemoProject, users: Mapping[str, Any], seed: int,
                 clock: SimulatedClock):
        self.project, self.spec, self.users, self.clock = project, spec, users, clock
        self.rng = _rng(seed, spec.slug)
        self.classes = list(spec.class_names)
        self.counts = _Counts(submitted=Counter(), reviews=Counter())
        # The first expert slots claimed in the history are declined once each, to show the hand-over.
        self.declines_left = len(workers.DECLINE_REASONS)

    def label_for(self, assignment, accuracy: float) -> str:
        return workers.simulated_label(
            truth=self.truth[assignment.item.external_id], classes=self.classes, accuracy=accuracy, rng=self.rng
        )

    def refresh_truth(self) -> None:
        gold = dict(GoldLabel.objects.filter(item__project=self.project).values_list("item__external_id", "label"))
        self.truth = {**self.spec.truth, **gold}

    def _pause(self, minutes: tuple[float, float]) -> None:
        self.clock.advance(dt.timedelta(minutes=float(self.rng.uniform(*minutes))))

    def jobs(self) -> None:
        """The scheduled jobs, as the worker would have run them at this hour."""
        now = self.clock.now()
        jobs.assignments_expire(now=now)
        jobs.crowd_breaches_escalate(now=now)
        jobs.sla_breaches_handle(now=now)
        jobs.waiting_assign(now=now)

    def _round_robin(self, people: Sequence[workers.DemoWorker], budget: int,
                     act: Callable[[workers.DemoWorker, Any, Any], bool]) -> None:
        """Each of `people` in turn claims their next assignment and `act`s on it, until `budget` actions
        that count (`act` returns True) are done or nobody finds work."""
        active = list(people)
        while budget > 0 and active:
            for worker in list(active):
                user = self.users[worker.username]
                assignment = claims.assignment_claim_next(user=user, project=self.project, now=self.clock.now())
                if assignment is None:
                    active.remove(worker)
                    continue
                if act(worker, user, assignment):
                    budget -= 1

    def _submit(self, assignment, user, *, time_ms: tuple[int, int], pause: tuple[float, float], **fields) -> None:
        """Submit after the time the label takes, then pause before the next."""
        spent = int(self.rng.integers(*time_ms))
        self.clock.advance(dt.timedelta(milliseconds=spent))
        submissions.assignment_submit(
            assignment_id=assignment.pk, user=user, time_spent_ms=spent, now=self.clock.now(), **fields
        )
        self.counts.submitted[assignment.kind] += 1
        self._pause(pause)

    def crowd(self, share: float) -> None:
        """Crowd annotators label `share` of the open crowd slots (gold checks included, as they come)."""
        open_crowd = self.project.assignments.filter(kind=AssignmentKind.CROWD, status__in=OPEN_ASSIGNMENT_STATUSES)

        def label(worker, user, assignment) -> bool:
            self._submit(assignment, user, time_ms=CROWD_TIME_MS, pause=CROWD_PAUSE_MINUTES,
                         label=self.label_for(assignment, worker.accuracy), confidence=int(self.rng.integers(2, 6)))
            return True

        self._round_robin(workers.HISTORY_CROWD, int(share * open_crowd.count()), label)

    def experts(self, share: float) -> None:
        """Experts label `share` of the escalated items: each takes their offers first, then what their
        expertise covers in the experts' queue (the first few expert slots are declined instead)."""
        escalated = Item.objects.filter(project=self.project, status=ItemStatus.ESCALATED).count()

        def label_or_decline(worker, user, assignment) -> bool:
            if self.declines_left > 0 and assignment.kind == AssignmentKind.EXPERT:
                self.clock.advance(dt.timedelta(minutes=1))
                submissions.assignment_decline(
                    assignment_id=assignment.pk,
                    user=user,
                    reason=workers.DECLINE_REASONS[self.counts.declines % len(workers.DECLINE_REASONS)],
                    now=self.clock.now(),
                )
                self.counts.declines += 1
                self.declines_left -= 1
                return False
            label = self.label_for(assignment, worker.accuracy)
            self._submit(
                assignment, user, time_ms=EXPERT_TIME_MS, pause=EXPERT_PAUSE_MINUTES,
                label=label,
                rationale=workers.rationale(self.spec.slug, label, self.rng),
                factors=list(self.spec.decision_factors[: int(self.rng.integers(0, 2))]),
                confidence=int(self.rng.integers(3, 6)),
            )
            return True

        self._round_robin(workers.HISTORY_EXPERTS, int(share * escalated), label_or_decline)

    def reviews(self, share: float) -> None:
        """The reviewer agrees with labels it judges right and overrides the others with a reason."""
        reviewer = self.users[workers.HISTORY_REVIEWER.username]
        open_reviews = self.project.assignments.filter(kind=AssignmentKind.REVIEW, status__in=OPEN_ASSIGNMENT_STATUSES)
        # Rounded up: a project with a single review slot still shows a review in its past.
        budget = math.ceil(share * open_reviews.count())
        while budget > 0:
            assignment = claims.assignment_claim_next(user=reviewer, project=self.project, now=self.clock.now())
            if assignment is None:
                break
            self._pause(EXPERT_PAUSE_MINUTES)
            judged = self.label_for(assignment, workers.HISTORY_REVIEWER.accuracy)
            if judged == assignment.item.final_label:
                review = submissions.review_submit(
                    assignment_id=assignment.pk, user=reviewer, verdict="agree", now=self.clock.now()
                )
            else:
                review = submissions.review_submit(
                    assignment_id=assignment.pk,
                    user=reviewer,
                    verdict="override",
                    label=judged,
                    reason=f"Checked against the source: this is {judged}, not {assignment.item.final_label}.",
                    now=self.clock.now(),
                )
            self.counts.reviews[review.verdict] += 1
            budget -= 1


@dataclass(frozen=True)
class ProjectHistory:
    """What the history needs of one project: the project, its content, and how its rows get in."""

    project: Project
    spec: demo.DemoProject
    rows: Sequence[Mapping[str, Any]]  # the rows to ingest, in arrival order
    ingest: Callable[[Sequence[Mapping[str, Any]]], None]


def demo_history_simulate(
    *,
    projects: Sequence[ProjectHistory],
    users: Mapping[str, Any],
    clock: SimulatedClock,
    today: dt.datetime,
    seed: int = demo.DEFAULT_SEED,
) -> dict[str, HistorySummary]:
    """Ingest each project's rows week by week from `clock`'s time (a Monday), with the work each week saw,
    then today's batch TODAY_LEAD before `today` with some crowd work on it. Runs under
    demo.clock.simulated_time with `clock` and leaves the clock before `today`. One clock for all projects,
    so experts' loads, shifts and measured accuracy are those of the same moment. Returns a summary by slug.

    Each past week: the crowd labels HISTORY_CROWD_SHARE of the open crowd slots each round, the experts
    a share of the escalated items that varies by week (their pace, so some weeks miss more SLA deadlines
    than others) and HISTORY_EXPERT_SHARE in the week's last round, the reviewer HISTORY_REVIEW_SHARE of the
    reviews; the first expert slots claimed are declined once (workers.DECLINE_REASONS)."""
    histories = [
        _History(project=p.project, spec=p.spec, users=users, seed=seed, clock=clock) for p in projects
    ]
    batches = [weekly_batches(p.rows) for p in projects]
    week_zero = clock.now()
    first_arrival: dict[str, dt.datetime] = {}

    def arrive(index: int, batch: Sequence[Mapping[str, Any]]) -> None:
        if batch:
            first_arrival.setdefault(projects[index].spec.slug, clock.now())
            projects[index].ingest(batch)
        histories[index].refresh_truth()

    for week in range(HISTORY_WEEKS):
        monday = week_zero + dt.timedelta(weeks=week)
        clock.move_to(monday + ARRIVAL)
        for index in range(len(projects)):
            arrive(index, batches[index][week])
        paces = [float(h.rng.uniform(*workers.HISTORY_EXPERT_PACE)) for h in histories]
        for round_number, start in enumerate(ROUND_STARTS):
            clock.move_to(monday + start)
            histories[0].jobs()  # the jobs are global: once per round
            last_round = round_number == len(ROUND_STARTS) - 1
            for history, pace in zip(histories, paces):
                history.crowd(workers.HISTORY_CROWD_SHARE)
                history.experts(workers.HISTORY_EXPERT_SHARE if last_round else pace)
                history.reviews(workers.HISTORY_REVIEW_SHARE)
        # The hourly reliability refresh, once a week here: later routing uses what it learned.
        accuracy_refresh(now=clock.now())
    clock.move_to(today - TODAY_LEAD)
    for index in range(len(projects)):
        arrive(index, batches[index][HISTORY_WEEKS])
    for history in histories:
        history.crowd(workers.TODAY_CROWD_SHARE)
    if clock.now() >= today:
        raise RuntimeError("today's crowd work ran past the seeding time; lower TODAY_CROWD_SHARE")
    return {
        p.spec.slug: HistorySummary(
            annotations=dict(h.counts.submitted),
            declines=h.counts.declines,
            reviews=dict(h.counts.reviews),
            weeks=HISTORY_WEEKS,
            first_arrival=first_arrival.get(p.spec.slug),
        )
        for p, h in zip(projects, histories)
    }
