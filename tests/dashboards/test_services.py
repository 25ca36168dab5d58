"""Refreshing the dashboard snapshots: what marks a partition changed, incremental against full, schedules."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from dashboards import tasks
from dashboards.models import AnnotatorDayStats, ItemDayStats, ItemWeekStats, SnapshotState
from dashboards.services import CLOCK_SKEW, REFRESH_OVERLAP, next_changes_since, snapshots_refresh
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
    # No other transaction is open (and any real one began long after NOW): the look-back is the fixed one,
    # or on PostgreSQL just the allowance for the hosts' clocks.
    look_back = CLOCK_SKEW if connection.vendor == "postgresql" else REFRESH_OVERLAP
    assert state.changes_since == NOW + HOUR - look_back
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


def test_the_next_refresh_looks_back_to_the_oldest_open_transaction_when_known_else_a_fixed_overlap():
    open_since = NOW - 3 * HOUR
    # SQLite, or a PostgreSQL role that cannot see other roles' sessions: the fixed overlap.
    assert next_changes_since(now=NOW, open_since=None, known=False) == NOW - REFRESH_OVERLAP
    assert next_changes_since(now=NOW, open_since=open_since, known=False) == NOW - REFRESH_OVERLAP
    assert next_changes_since(now=NOW, open_since=None, known=True) == NOW - CLOCK_SKEW
    assert next_changes_since(now=NOW, open_since=open_since, known=True) == open_since - CLOCK_SKEW
    # A transaction younger than the refresh's clock says (another host's clock ahead) does not move it.
    assert next_changes_since(now=NOW, open_since=NOW + HOUR, known=True) == NOW - CLOCK_SKEW


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_a_refresh_read_is_caught_however_long_its_transaction_ran():
    """A transaction that stamps an item, stays open past a refresh, and commits after it: the next refresh
    still finds the partition. Here the refresh's clock runs an hour ahead of the stamp, as it would when the
    transaction had run for an hour; a fixed overlap of REFRESH_OVERLAP missed it."""
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL can tell which transactions are open; SQLite keeps REFRESH_OVERLAP")
    import psycopg

    proj = project()
    now = timezone.now()
    ingest_at(proj, [row("a", MIDDLING), row("b", CONFIDENT)], now=now - 48 * HOUR)
    snapshots_refresh(now=now)
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                         dbname=settings["NAME"]) as other:
        other.execute("UPDATE labeling_item SET updated_at = now() WHERE external_id = 'a'")  # opens a transaction
        during = snapshots_refresh(now=now + HOUR)
        other.commit()
    assert during.partitions == 0  # the stamp was not committed yet
    after = snapshots_refresh(now=now + HOUR + dt.timedelta(minutes=1))
    assert (after.partitions, after.items) == (1, 2)
