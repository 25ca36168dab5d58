import json

import pytest
from django.contrib.auth import get_user_model

from core.models import AuditEvent
from labeling import services
from labeling.models import Project
from tests.labeling.conftest import row

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user_client(client):
    user = get_user_model().objects.create_superuser("root", password=None)
    client.force_login(user)
    return client


def project_form(**overrides):
    data = {
        "name": "Birds", "slug": "birds", "instructions": "", "data_type": "text",
        "classes": json.dumps(["owl", "crow"]), "decision_factors": "[]", "field_visibility": "{}",
        "review_sample_rate": "0",
        # The members inline, empty.
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_adding_a_project_goes_through_the_service(admin_user_client):
    response = admin_user_client.post("/admin/labeling/project/add/", project_form())
    assert response.status_code == 302
    project = Project.objects.get(slug="birds")
    assert project.classes == [{"name": "owl", "hotkey": "1"}, {"name": "crow", "hotkey": "2"}]
    assert AuditEvent.objects.filter(action="project.create", object_id=str(project.pk)).exists()


def test_invalid_classes_are_shown_on_the_form(admin_user_client):
    response = admin_user_client.post("/admin/labeling/project/add/", project_form(classes=json.dumps(["owl", "owl"])))
    assert response.status_code == 200
    assert "duplicate class" in response.content.decode()
    assert not Project.objects.filter(slug="birds").exists()


def test_a_class_in_use_cannot_be_removed_in_the_admin(admin_user_client, project):
    services.items_ingest(project=project, rows=[row("a", gold="bird")])
    url = f"/admin/labeling/project/{project.pk}/change/"
    response = admin_user_client.post(url, project_form(name="Pets", classes=json.dumps(["cat", "dog"])))
    assert response.status_code == 200 and "in use" in response.content.decode()
    response = admin_user_client.post(url, project_form(name="Pets!", classes=json.dumps(["cat", "dog", "bird"])))
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Pets!" and project.slug == "pets"
    assert AuditEvent.objects.filter(action="project.update").count() == 1


def test_audit_events_are_read_only(admin_user_client, project):
    event = AuditEvent.objects.get(action="project.create")
    assert admin_user_client.get("/admin/labeling/auditevent/").status_code == 200
    assert admin_user_client.get("/admin/labeling/auditevent/add/").status_code == 403
    assert admin_user_client.post(f"/admin/labeling/auditevent/{event.pk}/delete/").status_code == 403
    admin_user_client.post(f"/admin/labeling/auditevent/{event.pk}/change/", {"action": "forged"})
    event.refresh_from_db()
    assert event.action == "project.create"


@pytest.mark.parametrize("model", ["project", "item", "prediction", "annotation", "goldlabel", "review", "importjob"])
def test_changelists_render(admin_user_client, project, model):
    services.items_ingest(project=project,
        rows=[row("a", gold="cat", annotations=[{"annotator": "c", "label": "dog"}])])
    assert admin_user_client.get(f"/admin/labeling/{model}/").status_code == 200
