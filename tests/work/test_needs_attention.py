"""A declined expert item that nobody qualified on shift can take is shown to the admin ("Needs attention"
on the admin index, work.selectors.declined_waiting) and marked in the decline's audit event."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from core.models import AuditEvent
from experts.models import Role
from routing.models import Assignment
from tests.routing.assignment_helpers import ESCALATE_UNSURE, NOW, UNSURE, ingest_at, open_slots, person, project, row
from work import claims, submissions
from work.selectors import declined_waiting

pytestmark = pytest.mark.django_db
LATER = NOW + dt.timedelta(minutes=5)  # NOW is a Monday, 12:00 UTC


def _declined_by_ada(**bob_shifts):
    """ada (always on shift) is offered an item and declines it; bob, the only other pets expert, works
    the shifts given (none: bob is not on the roster)."""
    ada = person(Role.EXPERT, name="ada", expertise={"pets": 5})
    bob = person(Role.EXPERT, name="bob", expertise={"pets": 3}, **bob_shifts) if bob_shifts else None
    proj = project(policy=ESCALATE_UNSURE)
    [item_id] = ingest_at(proj, [row("a", UNSURE)])
    [slot] = open_slots(item_id)
    assert slot.assignee_id == ada.pk
    submissions.assignment_decline(assignment_id=slot.pk, user=ada, reason="outside my field", now=LATER)
    event = AuditEvent.objects.get(action="assignment.decline", object_id=str(slot.pk))
    [replacement] = open_slots(item_id)
    return ada, bob, proj, event, replacement


def test_nobody_else_qualified_the_item_waits_in_the_queue_and_needs_attention():
    ada, _, _, event, replacement = _declined_by_ada()
    assert replacement.assignee_id is None
    assert event.data["nobody_on_shift"] is True and event.data["offered_to"] is None
    total, rows = declined_waiting(now=LATER)
    assert total == 1
    [waiting] = rows
    assert waiting.slot.pk == replacement.pk
    assert (waiting.declined_by, waiting.reason) == ("ada", "outside my field")
    assert waiting.declined_at == LATER


def test_offered_to_someone_off_shift_needs_attention_until_their_shift_starts():
    # bob works Mondays 18:00-20:00 UTC: off shift at LATER, on shift before the 24 h deadline.
    _, bob, _, event, replacement = _declined_by_ada(shifts=[(0, dt.time(18), dt.time(20))])
    assert replacement.assignee_id == bob.pk
    assert event.data["nobody_on_shift"] is True
    assert declined_waiting(now=LATER)[0] == 1
    assert declined_waiting(now=LATER.replace(hour=18, minute=30))[0] == 0


def test_someone_else_on_shift_takes_it_and_nothing_needs_attention():
    _, bob, _, event, replacement = _declined_by_ada(shifts=[(d, dt.time(0), dt.time(0)) for d in range(7)])
    assert replacement.assignee_id == bob.pk
    assert event.data["nobody_on_shift"] is False
    assert declined_waiting(now=LATER) == (0, [])


def test_the_list_empties_once_someone_claims_the_item():
    _, _, proj, _, replacement = _declined_by_ada()
    carol = person(Role.EXPERT, name="carol", expertise={"pets": 4})
    claimed = claims.assignment_claim_next(user=carol, project=proj, now=LATER)
    assert claimed is not None and claimed.item_id == replacement.item_id
    assert declined_waiting(now=LATER)[0] == 0


def test_the_admin_index_shows_it_to_staff(client):
    _, _, proj, _, replacement = _declined_by_ada()
    admin = get_user_model().objects.create_superuser("boss", "boss@example.org", "pw")
    client.force_login(admin)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Needs attention: 1 declined expert item nobody on shift holds" in page
    assert reverse("routing:trail", args=[proj.slug, replacement.item.external_id]) in page
    assert "outside my field" in page


def test_the_admin_index_says_nothing_when_nothing_waits(client):
    person(Role.EXPERT, name="ada", expertise={"pets": 5})
    assert not Assignment.objects.exists()
    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.org", "pw"))
    assert "Needs attention" not in client.get(reverse("admin:index")).content.decode()
