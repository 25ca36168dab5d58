"""Workbench state for page and browser tests, built through the real services (no fixtures files).

A "Support tickets" project whose policy sends items flagged `metadata.escalate` to an expert and
everything else unsure to the crowd; a roster with an expert, two crowd annotators and a reviewer; an
admin and a stakeholder (view permissions, like seed_demo's stakeholders group).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from core.access import STAKEHOLDER_GROUP
from demo.datasets import DEMO_PEOPLE
from experts.availability import ExpertSnapshot, ShiftSpec, shift_intervals
from experts.models import Role
from experts.services import expert_create
from labeling.models import Annotation, GoldLabel, Project
from labeling.services import items_ingest, project_create
from routing import policies, services
from routing.engine.types import FeatureRule, PolicyConfig
from tests.memberships import members_everywhere
from work import claims, submissions
from work import page_selectors as work_page_selectors

PASSWORD = "pw-for-tests"
CLASSES = ("billing", "bug", "feature")
FACTORS = ("sarcasm", "jargon", "missing context")
UNSURE = {"billing": 0.45, "bug": 0.35, "feature": 0.20}
ESCALATION_REASON = "flagged_for_expert"


@dataclass
class Workbench:
    project: Project
    users: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, username: str) -> Any:
        return self.users[username]


def make_user(username: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


def ticket_row(external_id: str, text: str, *, escalate: bool, **metadata: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"channel": "email", "customer_email": f"{external_id}@customer.example", **metadata}
    if escalate:
        meta["escalate"] = "yes"
    return {
        "external_id": external_id,
        "data": {"text": text},
        "metadata": meta,
        "language": "en",
        "predictions": [{"model_name": "ticket-clf", "model_version": "v3", "probabilities": UNSURE}],
    }


def build_workbench(
    *,
    expert_texts: tuple[str, ...] = (),
    crowd_texts: tuple[str, ...] = (),
    gold_check_rate: float = 0.0,
    review_sample_rate: float = 0.0,
) -> Workbench:
    admin = make_user("admin", is_staff=True, is_superuser=True)
    project = project_create(
        name="Support tickets",
        slug="tickets",
        classes=list(CLASSES),
        instructions="Which team should answer the ticket?",
        decision_factors=list(FACTORS),
        field_visibility={"metadata.customer_email": ["expert", "reviewer"]},
        review_sample_rate=review_sample_rate,
        actor=admin,
    )
    policy = policies.policy_for_project(project)
    config = dataclasses.replace(
        PolicyConfig(),
        feature_rules=(FeatureRule("metadata.escalate", "present", None, ESCALATION_REASON, "expert"),),
        gold_check_rate=gold_check_rate,
    )
    policies.policy_version_publish(policy=policy, config=config, author=admin, change_note="page tests")
    users = {"admin": admin}
    for username, role in (("expert", Role.EXPERT), ("crowd1", Role.CROWD), ("crowd2", Role.CROWD),
                           ("reviewer", Role.REVIEWER)):
        users[username] = make_user(username, first_name=username.title())
        expert_create(user=users[username], display_name=username.title(), role=role, capacity=20, languages=["en"])
    users["stakeholder"] = make_user("stakeholder")
    users["stakeholder"].groups.add(Group.objects.get_or_create(name=STAKEHOLDER_GROUP)[0])
    members_everywhere()
    rows = [ticket_row(f"exp-{i}", text, escalate=True) for i, text in enumerate(expert_texts)]
    rows += [ticket_row(f"crowd-{i}", text, escalate=False) for i, text in enumerate(crowd_texts)]
    if rows:
        items_ingest(project=project, rows=rows, actor=admin)
    return Workbench(project=project, users=users)


# --- demo-ish state for screenshots -------------------------------------------------------------------------

EXPERT_RATIONALES = {
    "handwritten-digits": "Closed loop on top and a straight descender; the scanner tag contradicts the ink.",
    "biopsy-records": "Radius, area and concave points all sit in the usual range for this class; "
                      "the referral impression disagrees but the measurements are consistent.",
}


def _next_for(user: Any, project: Project | None = None) -> Any:
    return (
        work_page_selectors.held_assignment(user=user, project=project, now=timezone.now())
        or claims.assignment_claim_next(user=user, project=project)
    )


def demo_shifts(username: str) -> ExpertSnapshot:
    """The demo person's time zone and weekly shifts (demo/datasets.py) as routing's availability reads them."""
    person = next(p for p in DEMO_PEOPLE if p.username == username)
    return ExpertSnapshot(expert_id=0, user_id=0, display_name=username, time_zone=person.time_zone,
                          shifts=tuple(ShiftSpec(*s.times) for s in person.shifts))


def shift_moment(now: dt.datetime, username: str = "dr.ada", margin: dt.timedelta = dt.timedelta(hours=1)
                 ) -> dt.datetime:
    """`now` if the demo person is on shift then with `margin` of it left, else the latest moment before
    `now` when they are (routing's own shift rules, experts.availability): routing offers escalations to
    experts by shift, so pages that expect dr.ada's queue to hold work must be set up in her working hours,
    whatever the hour the tests run at."""
    moments = [
        min(now, finish - margin)
        for begin, finish in shift_intervals(demo_shifts(username), now - dt.timedelta(days=8), now + margin)
        if begin <= min(now, finish - margin)
    ]
    return max(moments)


@contextlib.contextmanager
def clock_moved_to(moment: dt.datetime) -> Iterator[None]:
    """`timezone.now()` runs from `moment` at the real clock's pace inside (labels still take time)."""
    real_now = timezone.now
    offset = moment - real_now()
    with mock.patch.object(timezone, "now", lambda: real_now() + offset):
        yield


def demo_activity(*, items: int = 40, seed: int = 3, crowd_rounds: int = 12) -> dict[str, Any]:
    """seed_demo's data after a day of work: the admin tightened both policies (metadata conflicts go to
    experts, at most three crowd labels) and re-routed, the crowd labeled biopsy records with some disagreement
    (the digits keep open crowd work), experts labeled part of their queue and the reviewer looked at one
    item. Returns the people by username. Set up in dr.ada's working hours (shift_moment): now, when it is."""
    with clock_moved_to(shift_moment(timezone.now())):
        return _demo_activity(items=items, seed=seed, crowd_rounds=crowd_rounds)


def _demo_activity(*, items: int, seed: int, crowd_rounds: int) -> dict[str, Any]:
    # The screenshots show work in progress: no simulated history, this function makes its own.
    call_command("seed_demo", items=items, no_history=True, stdout=io.StringIO())
    people = {u.username: u for u in get_user_model().objects.all()}
    admin = people["admin"]
    for slug, conflict_field in (("handwritten-digits", "scanner_tag"), ("biopsy-records", "referral_impression")):
        project = Project.objects.get(slug=slug)
        policy = policies.policy_for_project(project)
        # No hidden gold checks: their draws hash the user ids, which differ with the order tests run in,
        # and the pages under test must show the same work on every run and database.
        config = dataclasses.replace(
            PolicyConfig.from_dict(policy.live_version.config), metadata_conflict_field=conflict_field,
            max_crowd_labels=3, gold_check_rate=0.0,
        )
        policies.policy_version_publish(
            policy=policy, config=config, author=admin,
            change_note=f"Escalate when {conflict_field} contradicts the model; at most three crowd labels.",
        )
        services.items_reroute(item_ids=list(project.items.values_list("id", flat=True)), actor=admin, note="policy v2")
    rng = np.random.default_rng(seed)
    crowd = [people[f"crowd{i}"] for i in range(1, 5)]
    # The crowd works on the biopsy records; the digits' crowd work is left for the screenshots.
    biopsy = Project.objects.get(slug="biopsy-records")
    for _ in range(crowd_rounds):
        progressed = False
        for user in crowd:
            assignment = _next_for(user, biopsy)
            if assignment is None:
                continue
            progressed = True
            prediction = assignment.item.predictions.order_by("-created_at").first().probabilities
            classes = list(prediction)
            # Crowd labels: mostly the likely class, often not (so some items escalate).
            label = classes[int(rng.integers(len(classes)))] if rng.random() < 0.5 else max(prediction,
                key=prediction.get)
            submissions.assignment_submit(
                assignment_id=assignment.pk, user=user, label=label, confidence=int(rng.integers(2, 6)),
                time_spent_ms=int(rng.integers(4000, 25000)),
            )
        if not progressed:
            break
    gold = dict(GoldLabel.objects.values_list("item_id", "label"))
    for username, n in (("dr.ada", 2), ("dr.maria", 2), ("dr.alan", 1), ("dr.grace", 1)):
        user = people[username]
        for _ in range(n):
            assignment = _next_for(user)
            if assignment is None:
                break
            item = assignment.item
            prediction = item.predictions.order_by("-created_at").first().probabilities
            submissions.assignment_submit(
                assignment_id=assignment.pk, user=user, label=gold.get(item.id, max(prediction, key=prediction.get)),
                rationale=EXPERT_RATIONALES[item.project.slug],
                factors=list(item.project.decision_factors[:1]), confidence=4,
                time_spent_ms=int(rng.integers(30000, 120000)),
            )
    review = _next_for(people["reviewer"])
    if review is not None:
        submissions.review_submit(assignment_id=review.pk, user=people["reviewer"], verdict="agree")
    assert Annotation.objects.filter(role="expert").exists()
    return people
