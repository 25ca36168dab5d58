import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.test import override_settings
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from labeling import selectors, services
from labeling.models import Annotation, FinalSource, Item, ItemStatus, Prediction, Project
from tests.labeling.conftest import row, token_client

pytestmark = pytest.mark.django_db

ITEMS = "/api/projects/pets/items/"
EXPORT = "/api/projects/pets/export"


def post_rows(api, rows, url=ITEMS):
    return api.post(url, rows, format="json")


def upload(api, name, content: str | bytes, content_type="application/octet-stream", url=ITEMS):
    data = content.encode() if isinstance(content, str) else content
    return api.post(url, {"file": SimpleUploadedFile(name, data, content_type=content_type)}, format="multipart")


def streamed(response) -> str:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode()


class TestPermissions:
    @pytest.mark.parametrize("method, url", [
        ("get", "/api/projects/"), ("post", "/api/projects/"), ("get", "/api/projects/pets/"),
        ("get", ITEMS), ("post", ITEMS), ("get", ITEMS + "a-1/"), ("get", EXPORT),
    ])
    def test_unauthenticated_requests_are_refused(self, project, method, url):
        response = getattr(APIClient(), method)(url)
        assert response.status_code in (401, 403)

    def test_a_bad_token_is_refused(self, project):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token nope")
        assert client.get("/api/projects/").status_code == 401

    def test_non_staff_read_projects_but_cannot_create_or_touch_items(self, project, annotator_user):
        client = token_client(annotator_user)
        assert client.get("/api/projects/").status_code == 200
        assert client.post("/api/projects/", {"name": "X", "slug": "x", "classes": ["a", "b"]},
            format="json").status_code == 403
        assert post_rows(client, [row()]).status_code == 403
        assert client.get(ITEMS).status_code == 403
        assert client.get(EXPORT).status_code == 403
        assert not Project.objects.filter(slug="x").exists() and not Item.objects.exists()

    def test_session_auth_works_for_staff(self, project, staff, client):
        client.force_login(staff)
        assert client.get("/api/projects/pets/").status_code == 200


class TestProjects:
    def test_create_and_read_back(self, api):
        response = api.post("/api/projects/", {
            "name": "Pets", "slug": "pets", "classes": ["cat", {"name": "dog", "hotkey": "d"}],
            "instructions": "Which animal?", "data_type": "text", "decision_factors": ["sarcasm"],
        }, format="json")
        assert response.status_code == 201, response.json()
        body = api.get("/api/projects/pets/").json()
        assert body["classes"] == ["cat", "dog"]
        assert body["label_classes"] == [{"name": "cat", "hotkey": "1"}, {"name": "dog", "hotkey": "d"}]
        assert (body["instructions"], body["data_type"], body["decision_factors"]) == ("Which animal?", "text",
            ["sarcasm"])
        assert [p["slug"] for p in api.get("/api/projects/").json()] == ["pets"]

    @pytest.mark.parametrize("payload, field", [
        ({"name": "P", "slug": "pets", "classes": ["a", "b"]}, "slug"),
        ({"name": "P", "slug": "p2", "classes": ["a", "a"]}, "classes"),
        ({"name": "P", "slug": "p2", "classes": ["a", {"name": "b", "hotkey": "12"}]}, "classes"),
        ({"name": "P", "slug": "p2"}, "classes"),
        ({"name": "P", "slug": "p2", "classes": ["a", "b"], "data_type": "video"}, "data_type"),
    ])
    def test_invalid_projects_get_a_400_naming_the_field(self, api, project, payload, field):
        response = api.post("/api/projects/", payload, format="json")
        assert response.status_code == 400
        assert field in {e["field"].split("[")[0] for e in response.json()["errors"]}

    def test_unknown_project_is_404(self, api):
        assert api.get("/api/projects/nope/").status_code == 404
        assert post_rows(api, [row()], url="/api/projects/nope/items/").status_code == 404


class TestIngest:
    def test_json_rows_are_ingested_idempotently(self, api, project):
        rows = [row("a-1", domain="medical/radiology", gold="cat"), row("a-2")]
        first = post_rows(api, rows)
        assert first.status_code == 201
        assert first.json() == {"created": 2, "updated": 0, "predictions_added": 2, "annotations_added": 0, "items": 2}
        again = post_rows(api, rows)
        assert again.status_code == 200
        assert again.json() == {"created": 0, "updated": 0, "predictions_added": 0, "annotations_added": 0, "items": 2}
        assert Item.objects.count() == 2 and Prediction.objects.count() == 2

    def test_a_new_model_version_is_added_beside_the_old(self, api, project):
        post_rows(api, [row("a")])
        response = post_rows(api, [row("a", predictions=[{"model_version": "clf-2", "probabilities": {"dog": 1.0}}])])
        assert response.json()["predictions_added"] == 1
        assert sorted(Prediction.objects.values_list("model_version", flat=True)) == ["clf-1", "clf-2"]

    def test_every_error_is_reported_and_nothing_written(self, api, project):
        rows = [
            row("ok"),
            row("bad-prob", predictions=[{"model_version": "v", "probabilities": {"cat": 0.5, "dog": 0.1}}]),
            row("bad-class", predictions=[{"model_version": "v", "probabilities": {"cat": 0.5, "emu": 0.5}}]),
            row("bad-range", predictions=[{"model_version": "v", "probabilities": {"cat": 1.2, "dog": -0.2}}]),
            {"data": {"text": "no id"}},
            {"external_id": "no-data"},
            row("bad-types", metadata="x", language=3),
            row("ok"),
            row("bad-gold", gold="emu"),
        ]
        response = post_rows(api, rows)
        assert response.status_code == 400
        found = {(e["row"], e["field"]) for e in response.json()["errors"]}
        assert found == {
            (1, "predictions[0].probabilities"),
            (2, "predictions[0].probabilities.emu"),
            (3, "predictions[0].probabilities.cat"), (3, "predictions[0].probabilities.dog"),
            (4, "external_id"), (5, "data"), (6, "metadata"), (6, "language"), (7, "external_id"), (8, "gold"),
        }
        assert response.json()["error_count"] == len(found)
        assert not Item.objects.exists()

    @pytest.mark.parametrize("body, content_type",
        [("[{", "application/json"), ('{"external_id": "a"}', "application/json")])
    def test_a_malformed_or_non_array_body_is_a_400_in_the_error_format(self, api, project, body, content_type):
        response = api.generic("POST", ITEMS, body, content_type=content_type)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["row"] is None and error["field"] == "(body)"

    @override_settings(INGEST_MAX_ROWS=3)
    def test_too_many_rows(self, api, project):
        response = post_rows(api, [row(str(i)) for i in range(4)])
        assert response.status_code == 400
        assert "limit of 3 rows" in response.json()["errors"][0]["message"]
        jsonl = "".join(json.dumps(row(str(i))) + "\n" for i in range(4))
        assert upload(api, "rows.jsonl", jsonl).status_code == 400
        assert not Item.objects.exists()

    @override_settings(INGEST_MAX_BYTES=200)
    def test_oversized_body_or_file(self, api, project):
        big = [row(str(i)) for i in range(5)]
        response = post_rows(api, big)
        assert response.status_code == 400 and "over the limit of 200 bytes" in response.json()["errors"][0]["message"]
        jsonl = "".join(json.dumps(r) + "\n" for r in big)
        response = upload(api, "rows.jsonl", jsonl)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "file"
        assert not Item.objects.exists()

    def test_jsonl_upload(self, api, project):
        jsonl = "".join(json.dumps(row(str(i))) + "\n" for i in range(3))
        response = upload(api, "rows.jsonl", jsonl)
        assert response.status_code == 201 and response.json()["created"] == 3

    def test_jsonl_upload_with_a_malformed_line(self, api, project):
        jsonl = json.dumps(row("a")) + "\n" + '{"external_id": "b",\n' + json.dumps(row("c")) + "\n"
        response = upload(api, "rows.jsonl", jsonl)
        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["row"] == 1 and "line 2" in error["message"]
        assert not Item.objects.exists()

    def test_csv_upload_by_content_type(self, api, project):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["external_id", "text", "predictions", "domain", "gold"])
        writer.writerow(["c-1", "meows", json.dumps([{"model_version": "v", "probabilities": {"cat": 1}}]), "pets",
            "cat"])
        writer.writerow(["c-2", "barks", "", "", ""])
        response = upload(api, "upload", out.getvalue(), content_type="text/csv")
        assert response.status_code == 201, response.json()
        item = Item.objects.get(external_id="c-1")
        assert item.data == {"text": "meows"} and item.gold.label == "cat" and item.domain.path == "pets"

    def test_csv_with_a_bad_json_cell(self, api, project):
        response = upload(api, "rows.csv", 'external_id,text,metadata\nc-1,hi,"{oops"\n')
        assert response.status_code == 400
        assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(0, "metadata")]

    def test_non_utf8_file(self, api, project):
        response = upload(api, "rows.csv", "external_id,text\nc-1,caf\xe9\n".encode("latin-1"))
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"

    def test_multipart_without_file(self, api, project):
        response = api.post(ITEMS, {"other": "x"}, format="multipart")
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"

    def test_label_studio_tasks_as_is(self, api, project):
        tasks = [
            {"id": 101, "data": {"text": "chirp"}, "predictions": [
                {"model_version": "ls-7", "score": 0.85,
                 "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                     "value": {"choices": ["bird"]}}]}],
             "annotations": [{"completed_by": 3, "created_at": "2025-02-01T12:00:00Z", "lead_time": 4.2,
                              "result": [{"type": "choices", "value": {"choices": ["bird"]}}]}]},
            {"id": 102, "data": {"text": "woof", "external_id": "dog-1"}},
        ]
        response = upload(api, "export.json", json.dumps(tasks))
        assert response.status_code == 201, response.json()
        chirp = Item.objects.get(external_id="101")
        probabilities = chirp.predictions.get().probabilities
        assert probabilities["bird"] == pytest.approx(0.85)
        assert probabilities["cat"] == pytest.approx(0.075) and probabilities["dog"] == pytest.approx(0.075)
        annotation = chirp.annotations.get()
        assert (annotation.annotator.username, annotation.label, annotation.time_spent_ms) == ("label-studio-3",
            "bird", 4200)
        assert Item.objects.get(external_id="dog-1").data == {"text": "woof"}


def seed(project, **kw):
    services.items_ingest(project=project, rows=[
        row("a", domain="medical",
            annotations=[{"annotator": "c1", "label": "cat"}, {"annotator": "c2", "label": "dog"}]),
        row("b", domain="medical/radiology", annotations=[{"annotator": "e1", "label": "dog", "role": "expert",
                                                           "rationale": "ears", "factors": ["jargon"]}]),
        row("c", domain="medicalx", gold="bird",
            annotations=[{"annotator": "c1", "label": "cat"}, {"annotator": "c2", "label": "cat"}]),
        row("d/with/slash"),
        row("e"),
    ], **kw)


class TestItemList:
    def test_cursor_pagination_walks_every_item_once(self, api, project):
        services.items_ingest(project=project, rows=[row(f"i{n:02d}") for n in range(7)])
        seen, url, pages = [], ITEMS + "?page_size=3", 0
        while url:
            body = api.get(url).json()
            seen += [i["external_id"] for i in body["results"]]
            url, pages = body["next"], pages + 1
        assert seen == [f"i{n:02d}" for n in range(7)]
        assert pages == 3

    def test_filters(self, api, project, no_ingest_receivers):
        seed(project)
        Item.objects.filter(external_id="a").update(status=ItemStatus.LABELED, final_source=FinalSource.CONSENSUS,
                                                    final_label="cat", labeled_at=timezone.now() - timedelta(days=2))
        Item.objects.filter(external_id="b").update(status=ItemStatus.ESCALATED)
        Item.objects.filter(external_id="e").update(created_at=timezone.now() - timedelta(days=10))

        def ids(query):
            response = api.get(ITEMS + "?" + query)
            assert response.status_code == 200, response.content
            return sorted(i["external_id"] for i in response.json()["results"])

        assert ids("status=labeled") == ["a"]
        assert ids("status=labeled&status=escalated") == ["a", "b"]
        assert ids("domain=medical") == ["a", "b"]  # sub-domains, but not the sibling "medicalx"
        assert ids("domain=medical/radiology") == ["b"]
        assert ids("final_source=consensus") == ["a"]
        cutoff = (timezone.now() - timedelta(days=5)).isoformat().replace("+00:00", "Z")
        assert ids(f"created_before={cutoff}") == ["e"]
        assert ids(f"created_after={cutoff}") == ["a", "b", "c", "d/with/slash"]
        assert ids(f"labeled_after={cutoff}") == ["a"]
        assert ids(f"labeled_before={cutoff}") == []
        assert api.get(ITEMS + "?status=nonsense").status_code == 400

    def test_a_page_costs_the_same_queries_whatever_its_size(self, api, project, django_assert_max_num_queries):
        seed(project)
        services.items_ingest(project=project, rows=[row(f"x{n}", gold="cat", annotations=[
            {"annotator": f"u{n}", "label": "dog"}]) for n in range(30)])
        with django_assert_max_num_queries(8):
            assert len(api.get(ITEMS + "?page_size=50").json()["results"]) == 35

    def test_detail_has_predictions_annotations_and_gold(self, api, project):
        seed(project)
        body = api.get(ITEMS + "c/").json()
        assert body["gold"] == "bird"
        assert [a["annotator"] for a in body["annotations"]] == ["c1", "c2"]
        assert body["predictions"][0]["model_version"] == "clf-1"
        assert api.get(ITEMS + "d/with/slash/").json()["external_id"] == "d/with/slash"
        assert api.get(ITEMS + "missing/").status_code == 404


class TestExport:
    def test_jsonl_is_streamed_with_the_export_fields(self, api, project):
        seed(project)
        response = api.get(EXPORT + "?format=jsonl")
        assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in streamed(response).splitlines()]
        assert [line["external_id"] for line in lines] == ["a", "b", "c", "d/with/slash", "e"]
        b = lines[1]
        for key in ("external_id", "data", "status", "final_label", "final_source", "final_confidence", "annotations",
                    "gold", "metadata", "domain", "language", "predictions"):
            assert key in b
        assert set(b["annotations"][0]) >= {"annotator", "label", "rationale", "factors", "role", "time_spent_ms",
            "submitted_at"}
        assert b["annotations"][0]["factors"] == ["jargon"]

    def test_csv_and_label_studio_are_streamed(self, api, project):
        seed(project)
        text = streamed(api.get(EXPORT + "?format=csv"))
        records = list(csv.DictReader(io.StringIO(text)))
        assert len(records) == 5 and json.loads(records[2]["annotations"])[0]["label"] == "cat"
        tasks = json.loads(streamed(api.get(EXPORT + "?format=label-studio")))
        assert [t["data"]["external_id"] for t in tasks] == ["a", "b", "c", "d/with/slash", "e"]

    def test_subsets(self, api, project, no_ingest_receivers):
        seed(project)
        Item.objects.filter(external_id="e").update(status=ItemStatus.ESCALATED)

        def ids(subset):
            return [json.loads(line)["external_id"]
                for line in streamed(api.get(f"{EXPORT}?subset={subset}")).splitlines()]

        assert ids("escalated") == ["b", "e"]
        assert ids("disagreements") == ["a"]

    @pytest.mark.parametrize("query", ["format=xml", "subset=everything"])
    def test_bad_parameters(self, api, project, query):
        response = api.get(f"{EXPORT}?{query}")
        assert response.status_code == 400

    def test_export_spans_several_chunks(self, api, project, monkeypatch):
        monkeypatch.setattr(selectors, "EXPORT_CHUNK_SIZE", 2)
        services.items_ingest(project=project, rows=[row(str(n)) for n in range(5)])
        lines = streamed(api.get(EXPORT)).splitlines()
        assert [json.loads(line)["external_id"] for line in lines] == [str(n) for n in range(5)]


COMPARED = ("external_id", "data", "metadata", "domain", "language", "predictions", "annotations", "gold")


def comparable(api, slug):
    lines = [json.loads(line) for line in streamed(api.get(f"/api/projects/{slug}/export?format=jsonl")).splitlines()]
    return [{k: line[k] for k in COMPARED} for line in lines]


@pytest.mark.parametrize("fmt, filename", [("jsonl", "x.jsonl"), ("csv", "x.csv"), ("label-studio", "x.json")])
def test_export_round_trips_into_a_new_project(api, project, fmt, filename):
    seed(project)
    services.items_ingest(project=project, rows=[row("a", metadata={"k": [1, 2]}, language="de", predictions=[
        {"model_name": "big", "model_version": "v9", "probabilities": {"cat": 0.1, "dog": 0.3, "bird": 0.6}}])])
    exported = streamed(api.get(f"{EXPORT}?format={fmt}"))
    api.post("/api/projects/", {"name": "Copy", "slug": "copy", "classes": ["cat", "dog", "bird"]}, format="json")
    response = upload(api, filename, exported, url="/api/projects/copy/items/")
    assert response.status_code == 201, response.json()
    assert comparable(api, "copy") == comparable(api, "pets")
    assert Annotation.objects.filter(item__project__slug="copy").count() == 5


def test_schema_documents_labeling_without_warnings(api):
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    labeling_warnings = [m for m in list(GENERATOR_STATS._warn_cache) + list(GENERATOR_STATS._error_cache)
                         if "labeling" in m]
    assert labeling_warnings == []
    ingest = schema["paths"]["/api/projects/{slug}/items/"]["post"]
    assert set(ingest["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "400" in ingest["responses"]
    export = schema["paths"]["/api/projects/{slug}/export"]["get"]
    assert {p["name"] for p in export["parameters"]} >= {"format", "subset"}
    response = api.get("/api/schema/")
    assert response.status_code == 200
