"""GET /api/projects/<slug>/items/<external_id>/decisions/: an item's routing trail."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from core.access import STAKEHOLDER_GROUP
from experts.models import Expert, Role
from labeling.models import Item
from routing import services
from tests.memberships import members_everywhere
from tests.routing.api_clients import ROSTER_ROLES, session_client, staff_client, token_client
from tests.routing.persistence_helpers import UNSURE, ingest, item_row, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client()


def test_trail_lists_each_decision_with_version_stage_outcome_and_reasons(api, admin_user):
    project = make_project()
    ingest(project, [item_row("a/1", UNSURE)])
    item = Item.objects.get(external_id="a/1")
    services.item_reroute(item=item, actor=admin_user)
    response = api.get("/api/projects/pets/items/a/1/decisions/")
    assert response.status_code == 200
    body = response.json()
    assert body["external_id"] == "a/1"
    assert [d["stage"] for d in body["decisions"]] == ["ingest", "reroute"]
    first = body["decisions"][0]
    assert first["policy_version"] == 1
    assert first["outcome"] == "crowd"
    assert {r["code"] for r in first["reasons"]} >= {"low_top_probability"}
    assert first["signals"]["top_probability"] == pytest.approx(0.40)
    assert first["created_at"]


def test_unknown_item_or_project_is_404(api):
    make_project()
    assert api.get("/api/projects/pets/items/none/decisions/").status_code == 404
    assert api.get("/api/projects/nope/items/none/decisions/").status_code == 404


def test_anonymous_is_refused():
    make_project()
    assert APIClient().get("/api/projects/pets/items/a/decisions/").status_code in (401, 403)


def test_annotators_are_refused_whatever_their_credentials_and_staff_may_read():
    # A trail shows other people's labels and hidden fields: an annotator reading it would be biased.
    project = make_project()
    ingest(project, [item_row("a", UNSURE)])
    path = "/api/projects/pets/items/a/decisions/"
    for role in ROSTER_ROLES:
        refused = token_client(f"{role}-with-token", roster_role=role).get(path)
        assert refused.status_code == 403 and "annotators" in refused.json()["detail"]
    assert session_client().get(path).status_code == 403
    assert staff_client().get(path).status_code == 200
    assert token_client().get(path).status_code == 200
    # Stakeholders read trails as they do on the trail pages: in the "stakeholders" group, on the project.
    stakeholder = session_client("stakeholder")
    get_user_model().objects.get(username="stakeholder").groups.add(Group.objects.create(name=STAKEHOLDER_GROUP))
    assert stakeholder.get(path).status_code == 403
    members_everywhere()
    assert stakeholder.get(path).status_code == 200
    # Off duty is still on the roster.
    former = token_client("former-crowd", roster_role=Role.CROWD)
    Expert.objects.filter(user__username="former-crowd").update(active=False)
    assert former.get(path).status_code == 403
