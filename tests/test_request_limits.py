"""Request bodies: small for every view (REQUEST_MAX_BYTES), INGEST_MAX_BYTES for the views that take item
files; over the limit a 413 naming it, unread; a body without Content-Length a 411 (workbench.middleware)."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from labeling import import_jobs, services
from labeling.models import ImportJob, Item

pytestmark = pytest.mark.django_db

ITEMS = "/api/projects/pets/items/"


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops", password="pw-ops-1", is_staff=True)


@pytest.fixture
def project(staff):
    return services.project_create(name="Pets", slug="pets", classes=["cat", "dog"], actor=staff)


@pytest.fixture
def api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


def rows(n: int, text_bytes: int = 100) -> list[dict]:
    return [{"external_id": f"a-{i}", "data": {"text": "x" * text_bytes}} for i in range(n)]


def test_the_default_limit_is_small(settings):
    assert settings.REQUEST_MAX_BYTES <= 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.REQUEST_MAX_BYTES


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_a_login_form_over_the_limit_gets_a_413_page(client, settings, path):
    body = "username=a&password=" + "x" * settings.REQUEST_MAX_BYTES
    response = client.post(path, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    page = response.content.decode()
    assert "Request too large" in page and f"accepts at most {settings.REQUEST_MAX_BYTES:,} bytes" in page
    assert 'class="topbar"' in page


def test_an_api_body_over_the_limit_gets_a_413_in_the_error_shape(api, settings):
    settings.REQUEST_MAX_BYTES = 200
    response = api.post("/api/projects/", {"name": "N" * 300, "slug": "n", "classes": ["a", "b"]}, format="json")
    assert response.status_code == 413
    [error] = response.json()["errors"]
    assert error["field"] == "(body)" and "accepts at most 200 bytes" in error["message"]


def test_item_ingest_takes_bodies_over_the_general_limit(api, project, settings):
    settings.REQUEST_MAX_BYTES = 1000
    batch = rows(20)
    assert len(json.dumps(batch)) > 2000
    response = api.post(ITEMS, batch, format="json")
    assert response.status_code == 201, response.content
    assert Item.objects.count() == 20


def test_item_ingest_answers_413_past_its_own_limit_and_writes_nothing(api, project, settings):
    settings.INGEST_MAX_BYTES = 1000
    content = "".join(json.dumps(r) + "\n" for r in rows(1000))
    upload = SimpleUploadedFile("rows.jsonl", content.encode(), content_type="application/x-ndjson")
    response = api.post(ITEMS, {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert "accepts at most" in response.json()["errors"][0]["message"]
    assert not Item.objects.exists()


def test_the_import_page_takes_files_over_the_general_limit(staff, project, settings, tmp_path, monkeypatch):
    settings.REQUEST_MAX_BYTES = 1000
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(import_jobs, "async_task", lambda *args, **kwargs: None)
    client = Client()
    client.force_login(staff)
    content = "".join(json.dumps(r) + "\n" for r in rows(30)).encode()
    upload = SimpleUploadedFile("rows.jsonl", content, content_type="application/x-ndjson")
    response = client.post(reverse("labeling:import"), {"project": project.pk, "file": upload})
    assert response.status_code == 302
    assert ImportJob.objects.get().original_name == "rows.jsonl"


def test_a_chunked_body_without_content_length_gets_a_411_not_an_empty_batch_error(api, project):
    body = json.dumps(rows(1)).encode()
    response = api.generic(
        "POST", ITEMS, body, content_type="application/json", HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="",
    )
    assert response.status_code == 411
    [error] = response.json()["errors"]
    assert error["field"] == "(body)" and "Content-Length" in error["message"]
    assert not Item.objects.exists()
