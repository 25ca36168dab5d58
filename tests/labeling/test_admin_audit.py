"""Admin edits and deletes are audited; an item with a decision trail cannot be deleted; reads of routing
evidence never show a project's hidden fields to anyone but staff."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.access import STAKEHOLDER_GROUP
from core.models import AuditEvent
from experts.models import Expert, Role
from labeling.models import Annotation, Item, Project
from labeling.services import project_create
from routing.engine.types import FeatureRule, PolicyConfig
from routing.models import RoutingDecision
from tests.memberships import members_everywhere
from tests.routing.assignment_helpers import MIDDLING, ingest_at, person, project, row

pytestmark = pytest.mark.django_db


def test_an_admin_edit_of_an_item_records_what_changed(admin_client):
    pets = project()
    ingest_at(pets, [row("a", MIDDLING)])
    item = Item.objects.get()
    form = {"project": pets.pk, "external_id": "a", "data": '{"text": "x"}', "metadata": "{}", "language": "en",
            "status": "labeled", "final_label": "dog", "final_source": "expert", "final_confidence": ""}
    item_before = {"status": item.status, "final_label": item.final_label}
    assert admin_client.post(f"/admin/labeling/item/{item.pk}/change/", form).status_code == 302
    event = AuditEvent.objects.get(action="admin.update", object_type="labeling.Item", object_id=str(item.pk))
    assert event.data["before"]["status"] == item_before["status"] and event.data["after"]["status"] == "labeled"
    assert event.data["before"]["final_label"] == "" and event.data["after"]["final_label"] == "dog"
    assert event.actor.username == "admin"


def test_an_item_with_a_decision_trail_is_not_deleted_and_the_admin_says_why(admin_client):
    pets = project()
    ingest_at(pets, [row("a", MIDDLING)])
    item = Item.objects.get()
    page = admin_client.post(f"/admin/labeling/item/{item.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "Cannot delete item" in page.content.decode()
    assert Item.objects.filter(pk=item.pk).exists() and RoutingDecision.objects.filter(item=item).exists()
    assert not AuditEvent.objects.filter(action="admin.delete").exists()


def test_an_admin_delete_of_an_annotation_is_recorded_with_the_deleted_fields(admin_client):
    pets = project()
    crowd = person(Role.CROWD)
    ingest_at(pets, [row("a", MIDDLING, annotations=[{"annotator": crowd.username, "label": "cat"}])])
    annotation = Annotation.objects.get()
    assert admin_client.post(f"/admin/labeling/annotation/{annotation.pk}/delete/", {"post": "yes"}).status_code == 302
    event = AuditEvent.objects.get(action="admin.delete", object_type="labeling.Annotation")
    assert event.object_id == str(annotation.pk) and event.data["before"]["label"] == "cat"
    assert not Annotation.objects.exists()


def test_an_empty_project_deleted_in_the_admin_is_recorded(admin_client):
    empty = project_create(name="Empty", slug="empty", classes=["a", "b"])
    assert admin_client.post(f"/admin/labeling/project/{empty.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Project.objects.filter(slug="empty").exists()
    assert AuditEvent.objects.get(action="admin.delete", object_type="project").data["before"]["slug"] == "empty"


def test_roster_changes_are_audited_and_keep_the_claim_counter(admin_client):
    crowd = person(Role.CROWD)
    expert = Expert.objects.get(user=crowd)
    page = admin_client.get(f"/admin/experts/expert/{expert.pk}/change/")
    assert page.status_code == 200
    Expert.objects.filter(pk=expert.pk).update(claims_made=7)  # claims made while the form was open
    form = {"user": crowd.pk, "display_name": expert.display_name, "time_zone": "UTC", "languages": ["en"],
            "role": "reviewer", "capacity": "3", "email_notifications": "on"}  # active unticked: off duty
    for prefix in ("expertise", "shifts", "time_off", "accuracy"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = admin_client.post(f"/admin/experts/expert/{expert.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    expert.refresh_from_db()
    assert (expert.role, expert.capacity, expert.active, expert.claims_made) == ("reviewer", 3, False, 7)
    event = AuditEvent.objects.get(action="admin.update", object_type="experts.Expert")
    roster = ("role", "capacity", "active")
    assert {k: event.data["before"][k] for k in roster} == {"role": "crowd", "capacity": 50, "active": True}
    assert {k: event.data["after"][k] for k in roster} == {"role": "reviewer", "capacity": 3, "active": False}
    assert "claims_made" not in event.data["after"]


HIDDEN_RULE = PolicyConfig(
    # Its evidence quotes the field's value: "data.secret 'hidden from the crowd' != 'x'".
    feature_rules=(FeatureRule("data.secret", "ne", "x", "secret_flag", "crowd"),), gold_check_rate=0.0
)


@pytest.fixture
def secretive():
    pets = project(policy=HIDDEN_RULE, field_visibility={"data.secret": ["expert", "reviewer"]})
    ingest_at(pets, [row("a", MIDDLING)])
    return pets


def _token_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("path", ["/api/projects/pets/next-to-label", "/api/projects/pets/items/a/decisions/"])
def test_evidence_reads_never_show_hidden_fields_but_to_staff(secretive, path):
    pipeline = _token_client(get_user_model().objects.create_user("pipeline"))
    members_everywhere()
    staff = _token_client(get_user_model().objects.create_user("boss", is_staff=True))
    shown = pipeline.get(path)
    assert shown.status_code == 200
    assert "hidden from the crowd" not in shown.content.decode()
    assert "hidden from the crowd" in staff.get(path).content.decode()
    if "decisions" in path:
        reasons = [r for d in shown.json()["decisions"] for r in d["reasons"] if r["code"] == "secret_flag"]
        assert reasons and all(r["evidence"] == "data.secret (a field hidden from you)" for r in reasons)


def test_the_trail_page_withholds_a_restricted_fields_value_from_stakeholders(client, secretive):
    stakeholder = get_user_model().objects.create_user("stakeholder")
    stakeholder.groups.add(Group.objects.create(name=STAKEHOLDER_GROUP))
    members_everywhere()
    client.force_login(stakeholder)
    body = client.get(reverse("routing:trail", args=["pets", "a"])).content.decode()
    assert "secret_flag" in body and "data.secret (a field hidden from you)" in body
    assert "hidden from the crowd" not in body
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    assert "hidden from the crowd" in client.get(reverse("routing:trail", args=["pets", "a"])).content.decode()
