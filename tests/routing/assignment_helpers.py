"""Builders for the assignment tests: people on the roster, projects with a policy, routing at a chosen time.

State is made through the real services; `now` is always passed so tests never depend on the clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model

from experts.models import Role
from experts.services import domain_ensure, expert_create
from labeling.services import items_ingest, project_create
from labeling.signals import items_ingested
from routing import policies, services
from routing.engine.types import Comparison, PolicyConfig, Stage, Trigger
from routing.models import Assignment, AssignmentStatus
from routing.receivers import route_ingested_items

# Monday 2 March 2026, 12:00 UTC.
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
CLASSES = ("cat", "dog", "bird")
CONFIDENT = {"cat": 0.97, "dog": 0.02, "bird": 0.01}
MIDDLING = {"cat": 0.70, "dog": 0.20, "bird": 0.10}  # to the crowd, but no escalation trigger fires
UNSURE = {"cat": 0.40, "dog": 0.35, "bird": 0.25}  # escalated by ESCALATE_UNSURE
ALWAYS = [(weekday, dt.time(0), dt.time(0)) for weekday in range(7)]  # equal start and end: 24 h shifts
ESCALATE_UNSURE = PolicyConfig(
    triggers=(Trigger("top_probability", Comparison.LT, 0.5, "low_top_probability"),), gold_check_rate=0.0
)
RECEIVER_UID = "routing.route_ingested_items"

_names = itertools.count(1)


def person(role: str = Role.CROWD, *, name: str = "", expertise: dict[str, int] | None = None, **kw: Any):
    """A user on the roster; experts default to covering "pets" in English, always on shift."""
    username = name or f"{role}-{next(_names)}"
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.org")
    expertise = expertise if expertise is not None else ({"pets": 3} if role != Role.CROWD else {})
    for path in expertise:
        domain_ensure(path=path)
    kw.setdefault("shifts", ALWAYS)
    kw.setdefault("languages", ["en"])
    kw.setdefault("capacity", 50)
    expert_create(user=user, display_name=kw.pop("display_name", username), role=role, expertise=expertise, **kw)
    return user


def project(slug: str = "pets", *, policy: PolicyConfig | None = None, **kw: Any):
    created = project_create(name=slug.title(), slug=slug, classes=list(CLASSES), **kw)
    policy = policy if policy is not None else PolicyConfig(gold_check_rate=0.0)
    policies.policy_version_publish(
        policy=policies.policy_for_project(created), config=policy, author=None, change_note="test policy"
    )
    return created


def row(external_id: str, probabilities: dict[str, float], **extra: Any) -> dict[str, Any]:
    data = {
        "external_id": external_id,
        "data": {"text": f"text of {external_id}", "secret": "hidden from the crowd"},
        "metadata": {"source": "test"},
        "domain": "pets",
        "language": "en",
        "predictions": [{"model_version": "clf-1", "probabilities": probabilities}],
    }
    data.update(extra)
    return data


@contextmanager
def unrouted():
    items_ingested.disconnect(dispatch_uid=RECEIVER_UID)
    try:
        yield
    finally:
        items_ingested.connect(route_ingested_items, dispatch_uid=RECEIVER_UID)


def ingest_at(proj, rows: Iterable[dict[str, Any]], *, now: dt.datetime = NOW) -> list[int]:
    """Ingest and route at `now` (ingest's own routing reads the clock, so it is held back here)."""
    with unrouted():
        ids = items_ingest(project=proj, rows=list(rows)).item_ids
    services.items_route(item_ids=ids, stage=Stage.INGEST, now=now)
    return list(ids)


def slots(item_id, **filters):
    """The item's assignments, oldest first."""
    return list(Assignment.objects.filter(item_id=item_id, **filters).order_by("id"))


def open_slots(item_id, **filters):
    """The item's offered or active assignments, oldest first."""
    return slots(item_id, status__in=[AssignmentStatus.OFFERED, AssignmentStatus.ACTIVE], **filters)
