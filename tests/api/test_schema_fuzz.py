"""Property-based run of schemathesis over the published OpenAPI schema."""
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.db import close_old_connections
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from labeling import services

TOKEN = {}


@pytest.fixture
def in_process_requests():
    # As Django's test client does: the request must not close the test's connection (and its transaction).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, in_process_requests):
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    TOKEN["key"] = Token.objects.create(user=staff).key
    project = services.project_create(name="Pets", slug="pets", classes=["cat", "dog"], actor=staff)
    services.items_ingest(project=project, rows=[], actor=staff, source="api") if False else None


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_schema(case, world):
    if "slug" in (case.path_parameters or {}):
        case.path_parameters["slug"] = "pets"
    case.call_and_validate(headers={"Authorization": f"Token {TOKEN['key']}"})
