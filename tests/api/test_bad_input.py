"""Bad input gets the same clear 4xx on SQLite and PostgreSQL, naming the field (and row); the API's answers
match its published schema. Each case here was a 500 on PostgreSQL (or on both databases), a 201 on SQLite
only, or an answer the schema did not describe."""
import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from experts.models import Role
from labeling import services as labeling_services
from labeling.models import Item, Project
from labeling.storable import DEPTH_MESSAGE
from routing.models import RoutingDecision
from tests.labeling.conftest import token_client
from tests.routing.assignment_helpers import MIDDLING, ingest_at, person, project, row

ITEMS = "/api/projects/pets/items/"
DEEP = "[" * 10_000 + "]" * 10_000


def post_json(client, url, text: str):
    """Post a JSON document as written (json.dumps escapes NUL and lone surrogates as \\uXXXX, as clients do)."""
    return client.generic("POST", url, text.encode(), content_type="application/json")


def errors(response) -> list[tuple]:
    return [(e.get("row"), e["field"]) for e in response.json()["errors"]]


@pytest.fixture
def proj(db):
    return project()


@pytest.fixture
def api(proj):
    from django.contrib.auth import get_user_model

    return token_client(get_user_model().objects.create_user("ops", is_staff=True))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([row("ok", MIDDLING), row("a\x00", MIDDLING)], [(1, "external_id")]),
        ([{**row("a", MIDDLING), "data": {"text": "nul \x00 inside"}}], [(0, "data.text")]),
        ([{**row("a", MIDDLING), "data": {"te\x00xt": "key"}}], [(0, "data")]),
        ([{**row("a", MIDDLING), "metadata": {"src\x00": "key"}}], [(0, "metadata")]),
        ([{**row("a", MIDDLING), "data": {"text": "lone \ud800"}}], [(0, "data.text")]),
        ([{**row("a", MIDDLING), "annotations": [{"annotator": "ann", "label": "cat", "rationale": "r\x00"}]}],
         [(0, "annotations[0].rationale")]),
    ],
)
def test_unstorable_text_in_an_ingest_batch_is_a_400_naming_row_and_field(api, rows, expected):
    response = post_json(api, ITEMS, json.dumps(rows))
    assert response.status_code == 400
    assert errors(response) == expected
    assert not Item.objects.exists()


def test_json_nested_10000_deep_is_a_400_not_a_recursion_error(api):
    response = post_json(api, ITEMS, '[{"external_id": "a", "data": {"x": ' + DEEP + "}}]")
    assert response.status_code == 400
    assert DEPTH_MESSAGE in response.json()["errors"][0]["message"]
    just_too_deep = [{**row("a", MIDDLING), "data": {"x": json.loads("[" * 70 + "]" * 70)}}]
    response = post_json(api, ITEMS, json.dumps(just_too_deep))
    assert response.status_code == 400 and errors(response)[0][0] == 0


def test_unstorable_uploads_are_400s_naming_the_row(api):
    jsonl = json.dumps(row("a", MIDDLING)) + "\n" + '{"external_id": "b", "data": {"x": ' + DEEP + "}}\n"
    response = api.post(ITEMS, {"file": SimpleUploadedFile("rows.jsonl", jsonl.encode())}, format="multipart")
    assert response.status_code == 400 and errors(response) == [(1, "(row)")]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["external_id", "text"], ["a", "fine"], ["b", "nul\x00"]])
    response = api.post(ITEMS, {"file": SimpleUploadedFile("rows.csv", buffer.getvalue().encode())}, format="multipart")
    assert response.status_code == 400 and errors(response) == [(1, "data.text")]
    assert not Item.objects.exists()


def test_class_names_and_project_fields_with_nul_are_400s(api):
    body = {"name": "P", "slug": "p2", "classes": ["cat", "d\x00g"]}
    response = post_json(api, "/api/projects/", json.dumps(body))
    assert response.status_code == 400 and errors(response) == [(None, "classes[1]")]
    response = post_json(api, "/api/projects/", json.dumps({**body, "classes": ["a", "b"], "instructions": "\x00"}))
    assert response.status_code == 400 and errors(response) == [(None, "instructions")]
    assert not Project.objects.filter(slug="p2").exists()


@pytest.mark.parametrize(
    "query",
    ["?language=en%00", "?domain=%00", "?created_after=2026-01-01T00:00:00%2B20:00",
     "?labeled_before=2026-01-01T00:00:00-16:00"],
)
def test_filters_that_postgresql_cannot_compare_are_400s_naming_the_parameter(api, query):
    response = api.get(ITEMS + query)
    assert response.status_code == 400
    name = query[1:].split("=")[0]
    assert errors(response) == [(None, name)]


@pytest.mark.parametrize("query",
    ["?created_before=0001-01-01T00:00:00%2B01:00", "?labeled_after=9999-12-31T23:00:00-02:00"])
def test_date_filters_past_the_years_python_holds_in_utc_compare_as_the_first_or_last_instant(api, proj, query):
    ingest_at(proj, [row("a", MIDDLING)])
    response = api.get(ITEMS + query)
    assert response.status_code == 200 and response.json()["results"] == []


def test_an_item_path_with_nul_is_a_400(api):
    response = api.get(ITEMS + "a%00b/")
    assert response.status_code == 400 and errors(response) == [(None, "(path)")]


def test_page_size_must_be_a_whole_number_in_range(api):
    for bad in ("null", "0", "1001", "ten"):
        response = api.get(ITEMS + f"?page_size={bad}")
        assert response.status_code == 400 and errors(response) == [(None, "page_size")], bad
    assert api.get(ITEMS + "?page_size=1000").status_code == 200


def test_an_unknown_path_under_api_is_a_json_404(api):
    for path in ("/api/nothing-here", "/api/assignments/abc/submit", "/api/projects/a%2Fb/"):
        response = api.get(path)
        assert response.status_code == 404 and response["Content-Type"] == "application/json", path
        assert "detail" in response.json()
    # A path that only lacks its trailing slash is still redirected to it.
    assert api.get("/api/projects").status_code == 301


def test_final_source_is_null_not_blank_until_labeled(api, proj):
    ingest_at(proj, [row("a", MIDDLING)])
    body = api.get(ITEMS + "a/").json()
    assert (body["final_source"], body["final_label"]) == (None, None)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    final_source = schema["components"]["schemas"]["Item"]["properties"]["final_source"]
    assert final_source.get("nullable") or any("null" in json.dumps(s).lower() for s in final_source.get("oneOf", []))


def test_label_studio_export_is_documented_as_the_array_it_returns(api, proj):
    ingest_at(proj, [row("a", MIDDLING)])
    response = api.get("/api/projects/pets/export?format=label-studio")
    assert isinstance(json.loads(b"".join(response.streaming_content)), list)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = schema["paths"]["/api/projects/{slug}/export"]["get"]["responses"]["200"]["content"]
    assert documented["application/json"]["schema"]["type"] == "array"


def test_every_operation_documents_its_400_403_and_404():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"400", "403", "404"} <= set(operation["responses"]), (method, path)


class TestWorkLoopBodies:
    @pytest.fixture
    def claimed(self, proj):
        crowd = person(Role.CROWD)
        ingest_at(proj, [row("a", MIDDLING)])
        client = token_client(crowd)
        response = client.post("/api/projects/pets/next")
        return client, response.json()["assignment"]

    @pytest.mark.parametrize(
        ("action", "body", "field"),
        [
            ("submit", {"label": "cat", "rationale": "why\x00"}, "rationale"),
            ("submit", {"label": 5}, "label"),
            ("submit", {"label": "cat", "factors": "not a list"}, "factors"),
            ("decline", {"reason": "busy\x00"}, "reason"),
            ("decline", {"reason": ["a", "list"]}, "reason"),
            ("review", {"verdict": "override", "label": {"a": 1}}, "label"),
        ],
    )
    def test_bad_bodies_are_400s_in_the_errors_shape(self, claimed, action, body, field):
        client, assignment = claimed
        response = post_json(client, f"/api/assignments/{assignment}/{action}", json.dumps(body))
        assert response.status_code == 400
        assert errors(response) == [(None, field)]

    def test_malformed_json_is_a_400_in_the_errors_shape(self, claimed):
        client, assignment = claimed
        response = post_json(client, f"/api/assignments/{assignment}/decline", '{"reason": ')
        assert response.status_code == 400 and errors(response) == [(None, "(body)")]


def test_audit_export_since_empty_means_from_the_start(proj):
    from tests.routing.api_clients import staff_client

    ingest_at(proj, [row("a", MIDDLING)])
    client = staff_client()
    response = client.get("/api/audit/export?since=&kind=decisions")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).count(b"\n") == RoutingDecision.objects.count() > 0
    response = client.get("/api/audit/export", {"since": "2026-01-01", "until": "2026-01-01T00:00:00+20:00"})
    assert response.status_code == 400 and errors(response) == [(None, "until")]
    assert client.get("/api/audit/export", {"since": "2026-01-01", "until": "9999-12-31"}).status_code == 200


def test_reingesting_unchanged_rows_writes_no_routing_decision(proj):
    rows = [row(f"r{i}", MIDDLING) for i in range(3)]
    labeling_services.items_ingest(project=proj, rows=rows)
    decisions = RoutingDecision.objects.count()
    assert decisions == 3
    for _ in range(2):
        again = labeling_services.items_ingest(project=proj, rows=rows)
        assert again.changed_item_ids == () and len(again.item_ids) == 3
    assert RoutingDecision.objects.count() == decisions
    # A re-sent row that does change something (a new model version) is routed again; its twin is not.
    changed = {**rows[0], "predictions": [{"model_version": "v2", "probabilities": MIDDLING}]}
    labeling_services.items_ingest(project=proj, rows=[changed, rows[1]])
    assert RoutingDecision.objects.count() == decisions + 1


def test_a_page_url_with_nul_is_a_styled_400_not_a_database_error(client):
    response = client.get("/accounts/login/?next=%00")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert "next contains a NUL character" in response.content.decode()
