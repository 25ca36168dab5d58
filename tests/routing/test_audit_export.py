"""Audit export: manage.py export_audit and GET /api/audit/export stream JSONL of events and decisions."""

import datetime as dt
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AuditEvent
from routing import selectors
from routing.models import RoutingDecision
from tests.routing.persistence_helpers import CONFIDENT, UNSURE, ingest, item_row, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(admin_user):
    project = make_project()
    ingest(project, [item_row("a", CONFIDENT), item_row("b", UNSURE)], actor=admin_user)
    # One old event outside any recent window.
    old = AuditEvent.objects.create(action="old.thing", object_type="x", object_id="1")
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - dt.timedelta(days=30))
    return project


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line]


def today():
    return timezone.now().date().isoformat()


def test_command_exports_events_in_the_window_and_decisions_on_request(history, tmp_path):
    out = io.StringIO()
    call_command("export_audit", "--since", today(), "--until", today(), stdout=out)
    events = lines(out.getvalue())
    assert {e["kind"] for e in events} == {"event"}
    actions = {e["action"] for e in events}
    assert "items.ingest" in actions and "old.thing" not in actions
    target = tmp_path / "audit.jsonl"
    call_command("export_audit", "--since", today(), "--decisions", "--out", str(target), stderr=io.StringIO())
    rows = lines(target.read_text())
    decisions = [r for r in rows if r["kind"] == "decision"]
    assert len(decisions) == RoutingDecision.objects.count() == 2
    assert {d["external_id"] for d in decisions} == {"a", "b"}
    assert all(d["inputs_digest"] and d["inputs"]["item"] for d in decisions)


def test_command_rejects_bad_dates(history):
    with pytest.raises(CommandError, match="not a date"):
        call_command("export_audit", "--since", "yesterday")
    with pytest.raises(CommandError, match="after"):
        call_command("export_audit", "--since", "2026-02-02", "--until", "2026-01-01")


def staff_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_streams_events_or_decisions_for_staff(history, admin_user):
    client = staff_client(admin_user)
    response = client.get("/api/audit/export", {"since": today()})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    events = lines(b"".join(response.streaming_content).decode())
    assert "items.ingest" in {e["action"] for e in events}
    assert "old.thing" not in {e["action"] for e in events}
    response = client.get("/api/audit/export", {"since": today(), "until": today(), "kind": "decisions"})
    decisions = lines(b"".join(response.streaming_content).decode())
    assert {d["kind"] for d in decisions} == {"decision"}
    assert len(decisions) == 2


def test_api_is_staff_only_and_validates_parameters(history, admin_user):
    user = get_user_model().objects.create_user("ann", password="pw")
    assert staff_client(user).get("/api/audit/export", {"since": today()}).status_code == 403
    assert APIClient().get("/api/audit/export", {"since": today()}).status_code in (401, 403)
    response = staff_client(admin_user).get("/api/audit/export", {"since": "soon", "kind": "all"})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"since", "kind"}


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2026-03-04", False, dt.datetime(2026, 3, 4, tzinfo=dt.UTC)),
        ("2026-03-04", True, dt.datetime(2026, 3, 5, tzinfo=dt.UTC)),
        ("2026-03-04T10:30:00", True, dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC)),
        ("2026-03-04T10:30:00+02:00", False, dt.datetime(2026, 3, 4, 8, 30, tzinfo=dt.UTC)),
    ],
)
def test_parse_bound_reads_dates_as_whole_days(value, end, expected):
    assert selectors.parse_bound(value, end=end) == expected


@pytest.mark.parametrize("value", ["", "2026-13-01", "tomorrow", "2026-02-30T00:00"])
def test_parse_bound_names_the_bad_value(value):
    with pytest.raises(ValueError, match="is not a date"):
        selectors.parse_bound(value, end=False)
