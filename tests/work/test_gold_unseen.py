"""A gold check never hands a person an item they were already shown, in any form."""
import datetime as dt

import pytest

from experts.models import Role
from routing.models import Assignment, AssignmentStatus
from tests.routing.assignment_helpers import MIDDLING, NOW, ingest_at, person, project, row
from work import claims
from work import selectors as work_selectors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status", [AssignmentStatus.CANCELLED, AssignmentStatus.EXPIRED, AssignmentStatus.DECLINED])
def test_an_item_once_shown_as_a_crowd_slot_is_never_a_gold_candidate(status):
    proj = project()
    crowd = person(Role.CROWD)
    # A gold item the model is unsure of gets crowd slots like any other item.
    [gold_item] = ingest_at(proj, [row("g", MIDDLING, gold="dog")])
    [other_gold] = ingest_at(proj, [row("h", MIDDLING, gold="cat")])
    claimed = claims.assignment_claim_next(user=crowd, project=proj, now=NOW + dt.timedelta(minutes=5))
    assert claimed.item_id == gold_item
    Assignment.objects.filter(pk=claimed.pk).update(status=status)
    assert work_selectors.unseen_gold_items(user=crowd, project_id=proj.pk, limit=10) == [other_gold]
