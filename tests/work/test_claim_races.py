"""Races a single person can cause with two tabs, on a real autocommit connection (as in a request)."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection

from experts.models import Expert, Role
from labeling.models import Item
from routing.engine.types import PolicyConfig
from routing.models import Assignment, AssignmentKind, AssignmentStatus
from tests.routing.assignment_helpers import MIDDLING, NOW, ingest_at, person, project, row
from work import claim_sql, claims
from work import selectors as work_selectors

LATER = NOW + dt.timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_a_gold_check_lost_to_the_other_tab_leaves_the_claimed_slot_with_its_claimer(monkeypatch):
    proj = project(policy=PolicyConfig(gold_check_rate=1.0, crowd_overlap=1, max_crowd_labels=1))
    crowd = person(Role.CROWD)
    ingest_at(proj, [row("w", MIDDLING)])
    ingest_at(proj, [row("g", MIDDLING, gold="cat")])
    gold_item = Item.objects.get(external_id="g").pk
    found_unseen = work_selectors.unseen_gold_items

    def other_tab_meanwhile(**kwargs):
        found = found_unseen(**kwargs)
        # The same person's other tab claims the gold item's ordinary crowd slot in between.
        Assignment.objects.filter(item_id=gold_item, kind=AssignmentKind.CROWD).update(
            status=AssignmentStatus.ACTIVE, assignee=crowd, claimed_at=LATER, lease_expires_at=LATER
        )
        return found

    monkeypatch.setattr(work_selectors, "unseen_gold_items", other_tab_meanwhile)
    claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
    # No error, no gold check: they keep (and see) the slot they claimed.
    assert (claimed.item.external_id, claimed.kind, claimed.status) == ("w", AssignmentKind.CROWD, "active")
    held = set(Assignment.objects.filter(assignee=crowd, status="active").values_list("item__external_id", "kind"))
    assert held == {("w", AssignmentKind.CROWD), ("g", AssignmentKind.CROWD)}


@pytest.mark.django_db(transaction=True)
def test_a_claim_lost_to_a_unique_race_still_counts_once(monkeypatch):
    proj = project(policy=PolicyConfig(gold_check_rate=0.0, crowd_overlap=1, max_crowd_labels=1))
    crowd = person(Role.CROWD)
    ingest_at(proj, [row("w", MIDDLING)])
    real = claim_sql.crowd_claim
    calls = []

    def racing(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            if connection.vendor != "postgresql":
                claim_sql._worker_bumped(kwargs["user"])  # SQLite's bump is its own statement and stands
            raise IntegrityError("assignment_one_open_slot_per_person_and_item")
        return real(**kwargs)

    monkeypatch.setattr(claim_sql, "crowd_claim", racing)
    claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
    assert claimed is not None and claimed.item.external_id == "w"
    # The failed attempt is counted once, whatever the database, so the next claim draws afresh.
    assert Expert.objects.get(user=crowd).claims_made == 1
