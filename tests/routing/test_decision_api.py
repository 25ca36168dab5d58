"""GET /api/projects/<slug>/items/<external_id>/decisions/: an item's routing trail."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from labeling.models import Item
from routing import services
from tests.routing.persistence_helpers import UNSURE, ingest, item_row, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    user = get_user_model().objects.create_user("ann", password="pw")
    client = APIClient()
    client.force_authenticate(user)
    return client


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
