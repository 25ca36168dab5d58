"""Refreshing the dashboard snapshots: what marks a partition changed, incremental against full, schedules."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from dashboards import tasks
from dashboards.models import AnnotatorDayStats, ItemDayStats, ItemWeekStats, SnapshotState
from dashboards.services import REFRESH_OVERLAP, snapshots_refresh
from experts.models import Role
from tests.dashboards.builders import CONFIDENT, HOUR, MIDDLING, NOW, UNSURE, ingest_at, label, person, project, row

pytestmark = pytest.mark.django_db

FIELDS = ("project_id", "day", "domain_id", "route", "items", "labeled", "crowd_labels", "agreement_pairs",
          "agreement_agreeing", "statuses", "seconds_to_label", "time_per_item", "model_versions")


def snapshot() -> list[dict]:
    return sorted(ItemDayStats.objects.values(*FIELDS), key=lambda r: (r["day"], r["domain_id"] or 0, r["route"]))


def test_first_refresh_is_full_and_records_how_far_it_got():
    proj = project()
    ingest_at(proj, [row("a", CONFIDENT), row("b", MIDDLING)])
    result = snapshots_refresh(now=NOW + HOUR)
    assert (result.full, result.partitions, result.items) == (True, 1, 2)
    state = SnapshotState.objects.get()
    assert state.refreshed_at == NOW + HOUR == state.full_refreshed_at
    assert state.changes_since == NOW + HOUR - REFRESH_OVERLAP
    assert {r["route"]: r["items"] for r in snapshot()} == {"auto": 1, "crowd": 1}
    assert ItemWeekStats.objects.get(route="auto").week == dt.date(2026, 3, 2)


def test_incremental_refresh_replaces_only_changed_partitions():
    proj = project()
    c1, c2 = person(Role.CROWD), person(Role.CROWD)
    monday = ingest_at(proj, [row("a", MIDDLING)])
    tuesday = ingest_at(proj, [row("b", CONFIDENT)], now=NOW + 24 * HOUR)
    snapshots_refresh(now=NOW + 25 * HOUR)
    untouched = ItemDayStats.objects.get(day=dt.date(2026, 3, 3))

    label(c1, proj, monday["a"], "cat", at=NOW + 26 * HOUR, time_spent_ms=5000)
    label(c2, proj, monday["a"], "cat", at=NOW + 27 * HOUR, time_spent_ms=5000)
    result = snapshots_refresh(now=NOW + 28 * HOUR)
    assert (result.full, result.partitions, result.items) == (False, 1, 1)
    [a] = ItemDayStats.objects.filter(day=dt.date(2026, 3, 2))
    assert (a.route, a.labeled, a.crowd_labels, a.agreement_pairs) == ("crowd", 1, 2, 2)
    assert ItemDayStats.objects.get(day=dt.date(2026, 3, 3)).pk == untouched.pk  # not rewritten
    assert {r.annotator_id for r in AnnotatorDayStats.objects.all()} == {c1.pk, c2.pk}
    assert ItemWeekStats.objects.get(route="crowd").crowd_labels == 2

    assert snapshots_refresh(now=NOW + 40 * HOUR).partitions == 0
    assert tuesday  # ingested only to have a second partition


def test_incremental_and_full_refresh_agree():
    proj = project()
    c1, c2, c3 = person(Role.CROWD), person(Role.CROWD), person(Role.CROWD)
    ada = person(Role.EXPERT)
    items = ingest_at(proj, [row("a", MIDDLING), row("c", CONFIDENT, gold="dog"), row("u", UNSURE, gold="dog")])
    snapshots_refresh(now=NOW)
    label(c1, proj, items["a"], "cat", at=NOW + HOUR)
    snapshots_refresh(now=NOW + 2 * HOUR)
    label(c2, proj, items["a"], "dog", at=NOW + 3 * HOUR)
    label(c3, proj, items["a"], "cat", at=NOW + 4 * HOUR)
    label(ada, proj, items["u"], "dog", at=NOW + 5 * HOUR, time_spent_ms=60_000)
    snapshots_refresh(now=NOW + 6 * HOUR)
    incremental = snapshot()
    assert snapshots_refresh(now=NOW + 6 * HOUR, full=True).full
    assert snapshot() == incremental


def test_refresh_task_and_command_call_the_service():
    proj = project()
    ingest_at(proj, [row("a", CONFIDENT)])
    assert tasks.snapshots_refresh() == "1 partitions, 1 items (full=True)"
    assert tasks.snapshots_refresh().endswith("(full=False)")
    out = io.StringIO()
    call_command("refresh_dashboards", "--full", stdout=out)
    assert "Refreshed 1 partition(s), 1 item(s) (full rebuild)." in out.getvalue()


def test_migrations_schedule_the_refresh_every_minute_and_a_nightly_rebuild():
    schedules = {s.name: s for s in Schedule.objects.filter(func="dashboards.tasks.snapshots_refresh")}
    incremental, nightly = schedules["dashboards: refresh snapshots"], schedules["dashboards: rebuild snapshots"]
    assert (incremental.schedule_type, incremental.minutes, incremental.repeats) == (Schedule.MINUTES, 1, -1)
    assert (nightly.schedule_type, nightly.kwargs) == (Schedule.DAILY, "{'full': True}")
