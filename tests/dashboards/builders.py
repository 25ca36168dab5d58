"""Builders for the dashboard tests: state made through the real services, at chosen times.

`scenario()` builds one small project whose every dashboard figure is worked out by hand in the tests
(see the table in its docstring).
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.access import STAKEHOLDER_GROUP
from experts.models import Role
from experts.services import domain_ensure, expert_create
from labeling.models import Item, Project
from labeling.services import items_ingest, project_create
from labeling.signals import items_ingested
from routing import policies
from routing import services as routing
from routing.engine.types import Comparison, PolicyConfig, Stage, Trigger
from routing.receivers import route_ingested_items
from tests.memberships import members_everywhere
from work import claims, submissions

# Monday 2 March 2026, 12:00 UTC.
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
# When the scenario's figures are read: u3's expert slot (due NOW+24h) is overdue by then.
LATER = NOW + 48 * HOUR
CLASSES = ("cat", "dog", "bird")
CONFIDENT = {"cat": 0.97, "dog": 0.02, "bird": 0.01}  # accepted from the model
MIDDLING = {"cat": 0.70, "dog": 0.20, "bird": 0.10}  # to the crowd
UNSURE = {"cat": 0.40, "dog": 0.35, "bird": 0.25}  # escalated by POLICY's trigger
POLICY = PolicyConfig(
    triggers=(Trigger("top_probability", Comparison.LT, 0.5, "low_top_probability"),),
    crowd_overlap=2,
    gold_check_rate=0.0,
    sla_hours=24.0,
    expert_cost=10.0,
)
ALWAYS = [(weekday, dt.time(0), dt.time(0)) for weekday in range(7)]
RECEIVER_UID = "routing.route_ingested_items"
_names = itertools.count(1)


def user(username: str = "", *, staff: bool = False, stakeholder: bool = False):
    created = get_user_model().objects.create_user(
        username=username or f"user-{next(_names)}", password="pw", is_staff=staff
    )
    if stakeholder:
        created.groups.add(Group.objects.get_or_create(name=STAKEHOLDER_GROUP)[0])
        members_everywhere()
    return created


def person(role: str = Role.CROWD, *, name: str = "", display_name: str = "", capacity: int = 50):
    """A user on the roster, on shift around the clock; experts cover "pets"."""
    username = name or f"{role}-{next(_names)}"
    created = get_user_model().objects.create_user(username=username)
    expertise = {"pets": 4} if role != Role.CROWD else {}
    for path in expertise:
        domain_ensure(path=path)
    expert_create(
        user=created, display_name=display_name or username, role=role, expertise=expertise, shifts=ALWAYS,
        languages=["en"], capacity=capacity,
    )
    members_everywhere()
    return created


def project(slug: str = "pets", *, policy: PolicyConfig = POLICY) -> Project:
    created = project_create(name=slug.title(), slug=slug, classes=list(CLASSES))
    policies.policy_version_publish(
        policy=policies.policy_for_project(created), config=policy, author=None, change_note="test policy"
    )
    members_everywhere()
    return created


def row(external_id: str, probabilities: dict[str, float], *, domain: str = "pets", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "data": {"text": f"text of {external_id}"},
        "domain": domain,
        "language": "en",
        "predictions": [{"model_version": "clf-1", "probabilities": probabilities}],
        **extra,
    }


@contextmanager
def clock(now: dt.datetime):
    """Hold timezone.now at `now` (auto_now fields included)."""
    with mock.patch("django.utils.timezone.now", return_value=now):
        yield


def ingest_at(proj: Project, rows: Iterable[dict[str, Any]], *, now: dt.datetime = NOW) -> dict[str, int]:
    """Ingest and route at `now`; returns item ids by external id."""
    items_ingested.disconnect(dispatch_uid=RECEIVER_UID)
    try:
        with clock(now):
            ids = items_ingest(project=proj, rows=list(rows)).item_ids
            routing.items_route(item_ids=ids, stage=Stage.INGEST, now=now)
    finally:
        items_ingested.connect(route_ingested_items, dispatch_uid=RECEIVER_UID)
    return dict(Item.objects.filter(pk__in=ids).values_list("external_id", "id"))


def label(worker, proj: Project, item_id: int, value: str, *, at: dt.datetime, time_spent_ms: int | None = None):
    """`worker` claims their next slot (which must be `item_id`'s) ten minutes before `at` and submits `value`."""
    claimed = claims.assignment_claim_next(user=worker, project=proj, now=at - dt.timedelta(minutes=10))
    assert claimed is not None and claimed.item_id == item_id, f"{worker} got {claimed} instead of item {item_id}"
    with clock(at):
        return submissions.assignment_submit(
            assignment_id=claimed.pk, user=worker, label=value, time_spent_ms=time_spent_ms, now=at,
            rationale="looks like it",
        )


@dataclass
class Scenario:
    project: Project
    items: dict[str, int]
    crowd: tuple[Any, Any, Any]
    expert: Any


def scenario() -> Scenario:
    """Seven items ingested at NOW (Monday 2 March 2026, 12:00 UTC) into "pets":

    item  domain     prediction  crowd labels (time s)       expert (time s)   final (source)     gold  labelled
    a1    pets/cats  CONFIDENT   -                           -                 cat (model)        cat   NOW
    a2    pets/dogs  CONFIDENT   -                           -                 cat (model)        dog   NOW
    m1    pets/cats  MIDDLING    c1 cat 10, c2 cat 20        -                 cat (consensus)    cat   NOW+2h
    m2    pets/dogs  MIDDLING    c1 cat 10, c2 dog 20,       -                 cat (consensus)    dog   NOW+3h
                                 c3 cat 30
    u1    pets/cats  UNSURE      -                           ada dog 120       dog (expert)       dog   NOW+5h
    u2    pets/dogs  UNSURE      -                           ada cat 240       cat (expert)       cat   NOW+30h
    u3    pets/dogs  UNSURE      -                           (open, due NOW+24h) escalated        -     -

    u1..u3 are escalated at ingest (top probability < 0.5), due NOW+24h; u2's label comes after that.
    """
    proj = project()
    c1 = person(Role.CROWD, name="c1", display_name="Carla One")
    c2 = person(Role.CROWD, name="c2", display_name="Carl Two")
    c3 = person(Role.CROWD, name="c3", display_name="Cleo Three")
    ada = person(Role.EXPERT, name="ada", display_name="Dr. Ada")
    cats, dogs = "pets/cats", "pets/dogs"
    items = ingest_at(proj, [
        row("a1", CONFIDENT, domain=cats, gold="cat"),
        row("a2", CONFIDENT, domain=dogs, gold="dog"),
        row("m1", MIDDLING, domain=cats, gold="cat"),
        row("m2", MIDDLING, domain=dogs, gold="dog"),
        row("u1", UNSURE, domain=cats, gold="dog"),
        row("u2", UNSURE, domain=dogs, gold="cat"),
        row("u3", UNSURE, domain=dogs),
    ])
    label(c1, proj, items["m1"], "cat", at=NOW + 1 * HOUR, time_spent_ms=10_000)
    label(c2, proj, items["m1"], "cat", at=NOW + 2 * HOUR, time_spent_ms=20_000)
    label(c1, proj, items["m2"], "cat", at=NOW + 2 * HOUR, time_spent_ms=10_000)
    label(c2, proj, items["m2"], "dog", at=NOW + 2.5 * HOUR, time_spent_ms=20_000)
    label(c3, proj, items["m2"], "cat", at=NOW + 3 * HOUR, time_spent_ms=30_000)
    label(ada, proj, items["u1"], "dog", at=NOW + 5 * HOUR, time_spent_ms=120_000)
    label(ada, proj, items["u2"], "cat", at=NOW + 30 * HOUR, time_spent_ms=240_000)
    return Scenario(project=proj, items=items, crowd=(c1, c2, c3), expert=ada)
