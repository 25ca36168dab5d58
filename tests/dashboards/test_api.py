"""The dashboard JSON API: GET /api/metrics/<name>/ with the page's filters."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from dashboards.reports import METRIC_NAMES
from tests.dashboards.builders import user

URL = "/api/metrics/{}/"


def client_for(who) -> APIClient:
    client = APIClient()
    if who is not None:
        client.force_authenticate(who)
    return client


def get(who, name: str, **params):
    return client_for(who).get(URL.format(name), params)


class TestPermissions:
    def test_anonymous_is_refused(self, s):
        response = get(None, "effort", project="pets")
        assert response.status_code == 401  # token auth answers with a WWW-Authenticate challenge

    def test_signed_in_non_stakeholder_is_forbidden(self, s):
        response = get(user(), "effort", project="pets")
        assert response.status_code == 403
        assert "stakeholders" in response.json()["detail"]

    @pytest.mark.parametrize("name", METRIC_NAMES)
    def test_stakeholder_gets_every_metric(self, s, name):
        response = get(user(stakeholder=True), name, project="pets")
        assert response.status_code == 200
        body = response.json()
        assert body["metric"] == name and body["filters"]["project"] == "pets"
        assert body["snapshot_refreshed_at"] is not None
        assert body["tables"] and all({"title", "columns", "rows", "note"} <= set(t) for t in body["tables"].values())


class TestPeople:
    def test_non_staff_see_annotators_numbered_consistently(self, s):
        body = get(user(stakeholder=True), "gold_accuracy", project="pets").json()
        names = [r["annotator"] for r in body["tables"]["gold_by_annotator"]["rows"]]
        # Numbered in user-id order: c1, c2, c3, ada.
        assert sorted(names) == ["Annotator 1", "Annotator 2", "Annotator 3", "Annotator 4"]
        by_name = {r["annotator"]: (r["correct"], r["n"]) for r in body["tables"]["gold_by_annotator"]["rows"]}
        assert by_name["Annotator 3"] == (0, 1) and by_name["Annotator 4"] == (2, 2)
        assert "Dr. Ada" not in str(body) and "c1" not in names

    def test_staff_see_names(self, s):
        body = get(user(staff=True), "gold_accuracy", project="pets").json()
        by_name = {r["annotator"]: (r["correct"], r["n"]) for r in body["tables"]["gold_by_annotator"]["rows"]}
        assert by_name == {"Carla One": (1, 2), "Carl Two": (2, 2), "Cleo Three": (0, 1), "Dr. Ada": (2, 2)}


class TestFilters:
    def test_filters_are_applied_and_echoed(self, s):
        body = get(user(stakeholder=True), "gold_accuracy", project="pets", domain="pets/cats", route="expert",
                   since="2026-03-02", until="2026-03-02").json()
        assert body["filters"] == {"project": "pets", "since": "2026-03-02", "until": "2026-03-02",
                                   "domain": "pets/cats", "route": "expert"}
        assert [(r["route"], r["correct"], r["n"])
            for r in body["tables"]["gold_by_route"]["rows"]] == [("expert", 1, 1)]

    def test_without_project_every_project_counts(self, s):
        body = get(user(stakeholder=True), "flow").json()
        assert body["filters"]["project"] is None
        assert sum(r["items"] for r in body["tables"]["status_counts"]["rows"]) == 7

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"since": "yesterday"}, "since"),
            ({"since": "2026-03-05", "until": "2026-03-01"}, "until"),
            ({"route": "sideways"}, "route"),
            ({"domain": "pets/fish"}, "domain"),
            ({"project": "nope"}, "project"),
        ],
    )
    def test_bad_filters_answer_400_naming_the_field(self, s, params, field):
        response = get(user(stakeholder=True), "flow", **{"project": "pets", **params})
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == [field]

    def test_unknown_metric_is_404(self, s):
        response = get(user(stakeholder=True), "happiness", project="pets")
        assert response.status_code == 404
        assert "agreement" in response.json()["detail"]


@pytest.mark.django_db
def test_schema_documents_the_metric_endpoint():
    response = client_for(user(staff=True)).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/metrics/{name}/"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"name", "project", "since", "until", "domain", "route"} <= set(params)
    assert set(params["name"]["schema"]["enum"]) == set(METRIC_NAMES)
