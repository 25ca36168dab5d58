"""schemathesis over the published OpenAPI schema: every operation gets generated requests, valid and
invalid by the schema, against a small seeded world; any 5xx, or any answer the schema does not describe,
fails. Bounded: MAX_EXAMPLES a check per operation (about a minute in all). Runs on both databases; CI runs
it on PostgreSQL too, which refuses what SQLite stores (NUL, far UTC offsets, huge integers)."""
import itertools
import json

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from experts.models import Role
from routing.models import Assignment
from tests.routing.assignment_helpers import MIDDLING, UNSURE, ingest_at, person, project, row
from work import claims

MAX_EXAMPLES = 12
# Every check but "valid data is accepted": a schema cannot say that a label must be one of the project's
# classes, a slug unused or a reason non-empty, so those 400s are right. The API's own cases of it
# (next-to-label?limit=0, audit/export?since=) have tests in test_bad_input.py.
EXCLUDED_CHECKS = [positive_data_acceptance]
SLUG = "pets"
# Built at import, as /api/schema/ serves it (no request: the test settings' hosts apply only in tests).
schema = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
)
schema.app = get_wsgi_application()


@pytest.fixture
def in_process_requests():
    # As Django's test client does: a request must not close the test's connection (and its transaction).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, in_process_requests, settings):
    """A project with items in several states and a staff member who also works on the roster, so the
    work-loop endpoints reach real assignments. Returns (token, assignment ids to aim at)."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # the host schemathesis sends
    proj = project(SLUG)
    ingest_at(proj, [row(f"m{i}", MIDDLING) for i in range(4)] + [row(f"u{i}", UNSURE, gold="cat") for i in range(2)])
    staff = person(Role.CROWD, name="ops")
    get_user_model().objects.filter(pk=staff.pk).update(is_staff=True)
    staff.refresh_from_db()
    for _ in range(2):
        claims.assignment_claim_next(user=staff, project=proj)
    ids = list(Assignment.objects.values_list("pk", flat=True)[:5])
    return Token.objects.create(user=staff).key, itertools.cycle(ids)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_answers_as_its_schema_says(case, world):
    token, assignment_ids = world
    params = case.path_parameters or {}
    # Aim most requests at objects that exist (random slugs and ids only ever find a 404).
    if "slug" in params and not case.meta.generation.mode.is_negative:
        params["slug"] = SLUG
    if "assignment_id" in params and not case.meta.generation.mode.is_negative:
        params["assignment_id"] = next(assignment_ids)
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, excluded_checks=EXCLUDED_CHECKS)
