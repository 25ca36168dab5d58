import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling import import_jobs, services
from labeling.signals import items_ingested


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", is_staff=True)


@pytest.fixture
def annotator_user(db):
    return get_user_model().objects.create_user("crowd1")


@pytest.fixture
def project(staff):
    return services.project_create(name="Pets", slug="pets", classes=["cat", "dog", "bird"], actor=staff)


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded files go to the test's own folder."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def queued(monkeypatch):
    """Record enqueued tasks instead of sending them to a worker."""
    calls = []
    monkeypatch.setattr(import_jobs, "async_task", lambda *args, **kwargs: calls.append(args))
    return calls


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(staff):
    return token_client(staff)


def row(external_id="a-1", **overrides):
    base = {
        "external_id": external_id,
        "data": {"text": f"text of {external_id}"},
        "predictions": [{"model_version": "clf-1", "probabilities": {"cat": 0.7, "dog": 0.2, "bird": 0.1}}],
    }
    base.update(overrides)
    return base


@pytest.fixture
def no_ingest_receivers():
    """Disconnect higher layers' receivers (routing) to measure labeling alone."""
    saved = list(items_ingested.receivers)
    items_ingested.receivers.clear()
    items_ingested.sender_receivers_cache.clear()
    yield
    items_ingested.receivers[:] = saved
    items_ingested.sender_receivers_cache.clear()
