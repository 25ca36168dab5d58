"""Project membership: the staff-only members API, its audit events, the admin inline, and the claim API
refusing a non-member with a clear 403."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from core.models import AuditEvent
from experts.models import Role
from labeling import memberships
from labeling.models import ProjectMembership
from tests.routing.assignment_helpers import MIDDLING, ingest_at, person, project, row

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_api():
    client = APIClient()
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    return client


def test_staff_put_people_on_a_project_and_take_them_off_with_audit_events(staff_api):
    pets = project()
    user = get_user_model().objects.create_user("sam")
    created = staff_api.post("/api/projects/pets/members/", {"username": "sam"}, format="json")
    assert created.status_code == 201 and created.json()["username"] == "sam"
    assert staff_api.post("/api/projects/pets/members/", {"username": "sam"}, format="json").status_code == 200
    assert [m["username"] for m in staff_api.get("/api/projects/pets/members/").json()] == ["sam"]
    assert ProjectMembership.objects.filter(project=pets, user=user).count() == 1
    assert staff_api.delete("/api/projects/pets/members/sam/").status_code == 204
    assert staff_api.delete("/api/projects/pets/members/sam/").status_code == 404
    actions = list(AuditEvent.objects.filter(object_type="project", object_id=str(pets.pk))
                   .exclude(action="project.create").values_list("action", "data__user"))
    assert actions == [("project.member_add", "sam"), ("project.member_remove", "sam")]


@pytest.mark.parametrize("body", [{}, {"username": ""}, {"username": "ghost"}, ["sam"]])
def test_a_bad_member_request_is_a_400_naming_the_field(staff_api, body):
    project()
    response = staff_api.post("/api/projects/pets/members/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "username"
    assert not ProjectMembership.objects.exists()


def test_only_staff_manage_members():
    project()
    crowd = person(Role.CROWD)
    client = APIClient()
    client.force_login(crowd)
    assert client.get("/api/projects/pets/members/").status_code == 403
    assert client.post("/api/projects/pets/members/", {"username": crowd.username}, format="json").status_code == 403


def test_the_admin_inline_adds_and_removes_members_through_the_services(admin_client):
    pets = project()
    sam = get_user_model().objects.create_user("sam")
    form = {
        "name": "Pets", "instructions": "", "data_type": "text", "classes": '["cat", "dog", "bird"]',
        "decision_factors": "[]", "field_visibility": "{}", "review_sample_rate": "0",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0", "memberships-0-user": str(sam.pk),
    }
    url = f"/admin/labeling/project/{pets.pk}/change/"
    assert admin_client.post(url, form).status_code == 302
    membership = ProjectMembership.objects.get(project=pets, user=sam)
    form.update({"memberships-INITIAL_FORMS": "1", "memberships-0-id": str(membership.pk),
                 "memberships-0-project": str(pets.pk), "memberships-0-DELETE": "on"})
    assert admin_client.post(url, form).status_code == 302
    assert not ProjectMembership.objects.filter(project=pets, user=sam).exists()
    assert list(AuditEvent.objects.filter(action__startswith="project.member_").values_list("action", flat=True)) == [
        "project.member_add", "project.member_remove",
    ]


def test_a_crowd_annotator_claims_only_in_their_projects_and_hears_why():
    pets = project()
    crowd = person(Role.CROWD)
    ingest_at(pets, [row("a", MIDDLING)])
    memberships.membership_remove(project=pets, user=crowd)
    client = APIClient()
    client.force_login(crowd)
    refused = client.post("/api/projects/pets/next")
    assert refused.status_code == 403 and "not a member" in refused.json()["detail"]
    memberships.membership_add(project=pets, user=crowd)
    assert client.post("/api/projects/pets/next").status_code == 200
