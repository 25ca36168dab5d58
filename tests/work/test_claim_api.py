"""The work loop over HTTP: POST next, submit, decline, review; 404 for others' work, 409 for stale, 400 by field."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from experts.models import Role
from labeling.models import Annotation, Item, ItemStatus
from routing.engine.types import PolicyConfig
from routing.models import Assignment, AssignmentStatus
from tests.routing.assignment_helpers import (
    CONFIDENT,
    ESCALATE_UNSURE,
    MIDDLING,
    UNSURE,
    ingest_at,
    person,
    project,
    row,
)

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def now_ingest(proj, rows):
    # The API claims at the real clock, so routing must date the slots by it too.
    return ingest_at(proj, rows, now=timezone.now())


class TestNext:
    def test_claims_and_returns_the_item_without_hidden_fields_for_the_crowd(self):
        crowd = person(Role.CROWD)
        proj = project(field_visibility={"data.secret": ["expert", "reviewer"], "metadata.source": ["reviewer"]})
        now_ingest(proj, [row("a", MIDDLING)])
        response = client_for(crowd).post(f"/api/projects/{proj.slug}/next")
        assert response.status_code == 200
        body = response.json()
        assignment = Assignment.objects.get(pk=body["assignment"])
        assert (assignment.assignee_id, assignment.status) == (crowd.pk, AssignmentStatus.ACTIVE)
        assert body["kind"] == "crowd" and body["classes"] == ["cat", "dog", "bird"]
        assert body["item"]["external_id"] == "a"
        assert body["item"]["data"] == {"text": "text of a"}
        assert body["item"]["metadata"] == {}
        assert "predictions" not in body["item"]
        assert dt.datetime.fromisoformat(body["lease_expires_at"]) == assignment.lease_expires_at

    def test_experts_see_every_field_the_prediction_and_the_reasons(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE, field_visibility={"data.secret": ["expert", "reviewer"]})
        now_ingest(proj, [row("a", UNSURE)])
        body = client_for(ada).post(f"/api/projects/{proj.slug}/next").json()
        assert body["kind"] == "expert" and body["rationale_required"] is True
        assert body["item"]["data"]["secret"] == "hidden from the crowd"
        assert body["item"]["predictions"][0]["probabilities"] == UNSURE
        assert body["reasons"][0]["code"] == "low_top_probability"

    def test_experts_do_not_see_a_field_shown_to_reviewers_alone(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE, field_visibility={"data.secret": ["reviewer"], "metadata.source": []})
        now_ingest(proj, [row("a", UNSURE)])
        response = client_for(ada).post(f"/api/projects/{proj.slug}/next")
        assert response.json()["item"]["data"] == {"text": "text of a"} and response.json()["item"]["metadata"] == {}
        assert "hidden from the crowd" not in response.content.decode()

    def test_nothing_to_do_is_204(self):
        crowd = person(Role.CROWD)
        proj = project()
        now_ingest(proj, [row("a", CONFIDENT)])
        response = client_for(crowd).post(f"/api/projects/{proj.slug}/next")
        assert response.status_code == 204 and response.content == b""

    def test_people_off_the_roster_and_anonymous_callers_are_refused(self):
        proj = project()
        now_ingest(proj, [row("a", MIDDLING)])
        outsider = get_user_model().objects.create_user(username="outsider")
        assert client_for(outsider).post(f"/api/projects/{proj.slug}/next").status_code == 403
        assert APIClient().post(f"/api/projects/{proj.slug}/next").status_code in (401, 403)
        assert not Assignment.objects.filter(status=AssignmentStatus.ACTIVE).exists()

    def test_unknown_project_is_404(self):
        crowd = person(Role.CROWD)
        assert client_for(crowd).post("/api/projects/nope/next").status_code == 404

    def test_token_authentication_works(self):
        crowd = person(Role.CROWD)
        proj = project()
        now_ingest(proj, [row("a", MIDDLING)])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=crowd).key}")
        assert client.post(f"/api/projects/{proj.slug}/next").status_code == 200


class TestSubmit:
    def test_submit_returns_the_annotation_and_the_routed_item(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        now_ingest(proj, [row("a", MIDDLING)])
        for user, expected_status in ((c1, "in_crowd_review"), (c2, "labeled")):
            client = client_for(user)
            claimed = client.post(f"/api/projects/{proj.slug}/next").json()
            response = client.post(
                f"/api/assignments/{claimed['assignment']}/submit",
                {"label": "cat", "confidence": 4, "time_spent_ms": 800, "factors": []},
                format="json",
            )
            assert response.status_code == 200, response.json()
            body = response.json()
            assert body["annotation"]["label"] == "cat" and body["annotation"]["confidence"] == 4
            assert body["item"]["status"] == expected_status
        assert body["item"]["final_label"] == "cat" and body["item"]["final_source"] == "consensus"

    def test_someone_elses_assignment_is_404_and_changes_nothing(self):
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        proj = project()
        now_ingest(proj, [row("a", MIDDLING)])
        claimed = client_for(c1).post(f"/api/projects/{proj.slug}/next").json()
        response = client_for(c2).post(f"/api/assignments/{claimed['assignment']}/submit", {"label": "cat"},
            format="json")
        assert response.status_code == 404
        missing = client_for(c2).post("/api/assignments/999999/submit", {"label": "cat"}, format="json")
        assert missing.status_code == 404 and missing.json().keys() == response.json().keys()
        assert Assignment.objects.get(pk=claimed["assignment"]).status == AssignmentStatus.ACTIVE
        assert not Annotation.objects.exists()

    def test_completed_or_expired_is_409_and_changes_nothing(self, settings):
        crowd = person(Role.CROWD)
        proj = project(policy=PolicyConfig(crowd_overlap=3, gold_check_rate=0))
        [item_id] = now_ingest(proj, [row("a", MIDDLING)])
        client = client_for(crowd)
        first = client.post(f"/api/projects/{proj.slug}/next").json()["assignment"]
        assert client.post(f"/api/assignments/{first}/submit", {"label": "cat"}, format="json").status_code == 200
        again = client.post(f"/api/assignments/{first}/submit", {"label": "dog"}, format="json")
        assert again.status_code == 409 and "completed" in again.json()["detail"]

        other = person(Role.CROWD)
        settings.ASSIGNMENT_LEASE_MINUTES = 0
        held = client_for(other).post(f"/api/projects/{proj.slug}/next").json()["assignment"]
        decisions = Item.objects.get(pk=item_id).routing_decisions.count()
        stale = client_for(other).post(f"/api/assignments/{held}/submit", {"label": "cat"}, format="json")
        assert stale.status_code == 409 and "expired" in stale.json()["detail"]
        assert Annotation.objects.filter(annotator=other).count() == 0
        assert Item.objects.get(pk=item_id).routing_decisions.count() == decisions

    def test_validation_errors_are_400_by_field(self):
        crowd = person(Role.CROWD)
        proj = project(decision_factors=["blurry"])
        now_ingest(proj, [row("a", MIDDLING)])
        client = client_for(crowd)
        claimed = client.post(f"/api/projects/{proj.slug}/next").json()["assignment"]
        response = client.post(
            f"/api/assignments/{claimed}/submit",
            {"label": "horse", "factors": ["loud"], "confidence": 0, "time_spent_ms": -5},
            format="json",
        )
        assert response.status_code == 400
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"label", "factors", "confidence", "time_spent_ms"}
        assert all(e["message"] for e in response.json()["errors"])
        assert client.post(f"/api/assignments/{claimed}/submit", ["cat"], format="json").status_code == 400
        assert Assignment.objects.get(pk=claimed).status == AssignmentStatus.ACTIVE


class TestDeclineAndReview:
    def test_decline_needs_a_reason_and_hands_the_item_on(self):
        crowd = person(Role.CROWD)
        proj = project()
        now_ingest(proj, [row("a", MIDDLING)])
        client = client_for(crowd)
        claimed = client.post(f"/api/projects/{proj.slug}/next").json()["assignment"]
        empty = client.post(f"/api/assignments/{claimed}/decline", {"reason": ""}, format="json")
        assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "reason"
        response = client.post(f"/api/assignments/{claimed}/decline", {"reason": "image broken"}, format="json")
        assert response.status_code == 200 and response.json() == {"assignment": claimed, "status": "declined"}
        assert client.post(f"/api/assignments/{claimed}/decline", {"reason": "again"}, format="json").status_code == 409
        assert Assignment.objects.filter(status=AssignmentStatus.OFFERED, assignee=None).count() == 2

    def test_review_override_over_the_api(self):
        reviewer = person(Role.REVIEWER)
        proj = project(review_sample_rate=1.0)
        [item_id] = now_ingest(proj, [row("a", CONFIDENT)])
        client = client_for(reviewer)
        claimed = client.post(f"/api/projects/{proj.slug}/next").json()
        assert claimed["kind"] == "review" and claimed["item"]["final_label"] == "cat"
        bad = client.post(f"/api/assignments/{claimed['assignment']}/review", {"verdict": "override"}, format="json")
        assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"label", "reason"}
        response = client.post(
            f"/api/assignments/{claimed['assignment']}/review",
            {"verdict": "override", "label": "bird", "reason": "beak visible"},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["review"]["previous_label"] == "cat"
        assert response.json()["item"]["final_label"] == "bird"
        item = Item.objects.get(pk=item_id)
        assert (item.final_label, item.status) == ("bird", ItemStatus.AUDITED)

    def test_schema_documents_the_endpoints(self):
        admin = get_user_model().objects.create_superuser(username="root", password="x")
        schema = client_for(admin).get("/api/schema/").content.decode()
        for path in ("/api/projects/{slug}/next", "/api/assignments/{assignment_id}/submit",
                     "/api/assignments/{assignment_id}/decline", "/api/assignments/{assignment_id}/review"):
            assert path in schema
