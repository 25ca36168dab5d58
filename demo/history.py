"""A short simulated history for the demo, made through the real services (claim, submit, decline,
review), so the queues, item trails and dashboards have something to show from the first login.

Who labels what, and how well, is decided by a seeded numpy generator from demo.datasets' and demo.workers' parameters;
the services decide everything else (routing after each label, expert ranking, gold checks, reviews),
exactly as they would for people. Actions happen at the real clock, one after the other.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from demo import datasets as demo
from demo import workers
from labeling.models import GoldLabel, Item, ItemStatus, Project
from routing.models import OPEN_ASSIGNMENT_STATUSES, AssignmentKind
from work import claims, submissions

# Pretend times spent, in milliseconds, drawn uniformly: quick crowd labels, slower expert judgements.
CROWD_TIME_MS = (2_500, 30_000)
EXPERT_TIME_MS = (20_000, 110_000)


@dataclass(frozen=True)
class HistorySummary:
    annotations: Mapping[str, int]  # assignment kind -> labels submitted
    declines: int
    reviews: Mapping[str, int]  # verdict -> count


def _rng(seed: int, slug: str) -> np.random.Generator:
    # One stream per project, so capping or adding a project never reshuffles another's history.
    return np.random.default_rng([seed, *slug.encode()])


def demo_history_simulate(
    *, project: Project, spec: demo.DemoProject, users: Mapping[str, Any], seed: int = demo.DEFAULT_SEED
) -> HistorySummary:
    """Crowd annotators do as many labels as HISTORY_CROWD_SHARE of the crowd slots open after ingest
    (gold checks included, as they come), experts through HISTORY_EXPERT_SHARE of the escalated ones (the
    first expert offered an item declines it once, to show the hand-over), and the reviewer through
    HISTORY_REVIEW_SHARE of the reviews, overriding labels it finds wrong."""
    rng = _rng(seed, spec.slug)
    classes = list(spec.class_names)
    gold = dict(GoldLabel.objects.filter(item__project=project).values_list("item__external_id", "label"))
    truth = {**spec.truth, **gold}
    submitted: Counter[str] = Counter()

    def label_for(assignment, accuracy: float) -> str:
        return workers.simulated_label(
            truth=truth[assignment.item.external_id], classes=classes, accuracy=accuracy, rng=rng
        )

    # Crowd: round-robin over the annotators until the budget is spent or nobody finds work.
    open_crowd = project.assignments.filter(kind=AssignmentKind.CROWD, status__in=OPEN_ASSIGNMENT_STATUSES)
    budget = int(workers.HISTORY_CROWD_SHARE * open_crowd.count())
    active = list(workers.HISTORY_CROWD)
    while budget > 0 and active:
        for worker in list(active):
            assignment = claims.assignment_claim_next(user=users[worker.username], project=project)
            if assignment is None:
                active.remove(worker)
                continue
            submissions.assignment_submit(
                assignment_id=assignment.pk,
                user=users[worker.username],
                label=label_for(assignment, worker.accuracy),
                confidence=int(rng.integers(2, 6)),
                time_spent_ms=int(rng.integers(*CROWD_TIME_MS)),
            )
            submitted[assignment.kind] += 1
            budget -= 1

    # Experts: each takes their offers first, then what their expertise covers in the experts' queue.
    escalated = Item.objects.filter(project=project, status=ItemStatus.ESCALATED).count()
    budget = int(workers.HISTORY_EXPERT_SHARE * escalated)
    declines = 0
    active = list(workers.HISTORY_EXPERTS)
    while budget > 0 and active:
        for worker in list(active):
            user = users[worker.username]
            assignment = claims.assignment_claim_next(user=user, project=project)
            if assignment is None:
                active.remove(worker)
                continue
            if declines < len(workers.DECLINE_REASONS) and assignment.kind == AssignmentKind.EXPERT:
                submissions.assignment_decline(
                    assignment_id=assignment.pk, user=user, reason=workers.DECLINE_REASONS[declines]
                )
                declines += 1
                continue
            label = label_for(assignment, worker.accuracy)
            factors = list(spec.decision_factors[: int(rng.integers(0, 2))])
            submissions.assignment_submit(
                assignment_id=assignment.pk,
                user=user,
                label=label,
                rationale=workers.rationale(spec.slug, label, rng),
                factors=factors,
                confidence=int(rng.integers(3, 6)),
                time_spent_ms=int(rng.integers(*EXPERT_TIME_MS)),
            )
            submitted[assignment.kind] += 1
            budget -= 1

    # The reviewer: agrees with labels it judges right, overrides the others with a reason.
    reviewer = users[workers.HISTORY_REVIEWER.username]
    reviews: Counter[str] = Counter()
    # Rounded up: a project with a single review slot still shows a review in its past.
    budget = math.ceil(workers.HISTORY_REVIEW_SHARE * project.assignments.filter(kind=AssignmentKind.REVIEW).count())
    while budget > 0:
        assignment = claims.assignment_claim_next(user=reviewer, project=project)
        if assignment is None:
            break
        judged = label_for(assignment, workers.HISTORY_REVIEWER.accuracy)
        if judged == assignment.item.final_label:
            review = submissions.review_submit(assignment_id=assignment.pk, user=reviewer, verdict="agree")
        else:
            review = submissions.review_submit(
                assignment_id=assignment.pk,
                user=reviewer,
                verdict="override",
                label=judged,
                reason=f"Checked against the source: this is {judged}, not {assignment.item.final_label}.",
            )
        reviews[review.verdict] += 1
        budget -= 1
    return HistorySummary(annotations=dict(submitted), declines=declines, reviews=dict(reviews))
