"""An expert slot is offered by name only to an expert on the item's project (core.access): the better-ranked
expert outside it is passed over, and with nobody inside the slot waits unassigned."""

import pytest

from experts.models import Role
from labeling.memberships import membership_remove
from tests.routing.assignment_helpers import ESCALATE_UNSURE, UNSURE, ingest_at, open_slots, person, project, row

pytestmark = pytest.mark.django_db


def test_experts_outside_the_project_are_never_offered_its_items():
    proj = project(policy=ESCALATE_UNSURE)
    outsider = person(Role.EXPERT, name="outsider", expertise={"pets": 5})
    insider = person(Role.EXPERT, name="insider", expertise={"pets": 1})
    membership_remove(project=proj, user=outsider)
    (item_id,) = ingest_at(proj, [row("u", UNSURE)])
    (slot,) = open_slots(item_id, kind="expert")
    assert slot.assignee_id == insider.pk
    membership_remove(project=proj, user=insider)
    (other,) = ingest_at(proj, [row("v", UNSURE)])
    (waiting,) = open_slots(other, kind="expert")
    assert waiting.assignee_id is None
