"""The demo's past: weeks of history at a simulated clock, and open expert work when the demo starts."""

import datetime as dt
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F, Max, Min
from django.utils import timezone

from core.models import AuditEvent
from demo import datasets as demo
from demo.clock import SimulatedClock, simulated_time
from demo.history import HISTORY_WEEKS, TODAY_SHARE, history_start, weekly_batches
from labeling.models import Annotation, Item
from routing.models import Assignment, AssignmentKind, AssignmentStatus, RoutingDecision
from work.selectors import queue_summary

ITEMS = 60


def test_weekly_batches_put_every_row_in_one_batch_in_order_with_today_last():
    rows = [{"external_id": str(i)} for i in range(101)]
    batches = weekly_batches(rows, weeks=8, today_share=0.3)
    assert len(batches) == 9
    assert [r for batch in batches for r in batch] == rows
    assert len(batches[-1]) == 31  # ceil(0.3 * 101)
    assert max(len(b) for b in batches[:-1]) - min(len(b) for b in batches[:-1]) <= 1
    assert weekly_batches([], weeks=3) == [[], [], [], []]


def test_history_starts_on_a_monday_weeks_back():
    thursday = dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.UTC)
    assert history_start(thursday, weeks=8) == dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
    assert history_start(thursday, weeks=8).weekday() == 0


def test_the_simulated_clock_reaches_auto_now_fields_and_only_moves_forward():
    start = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    clock = SimulatedClock(start)
    with simulated_time(clock):
        assert timezone.now() == start
        clock.advance(dt.timedelta(hours=2))
        assert timezone.now() == start + dt.timedelta(hours=2)
        clock.move_to(start)  # earlier: stays
        assert timezone.now() == start + dt.timedelta(hours=2)
        with pytest.raises(ValueError):
            clock.advance(dt.timedelta(seconds=-1))
    assert timezone.now() > start + dt.timedelta(days=300)


@pytest.mark.django_db
def test_the_demo_has_weeks_of_past_and_open_expert_work_today():
    before = timezone.now()
    out = io.StringIO()
    call_command("seed_demo", "--items", str(ITEMS), stdout=out)
    after = timezone.now()

    # Items arrived week by week, then today; nothing is stamped in the future.
    # (Today's batch arrives six hours before the seeding: on a Monday morning, in last week.)
    assert len(Item.objects.dates("created_at", "week")) >= HISTORY_WEEKS
    first = Item.objects.aggregate(first=Min("created_at"))["first"]
    assert first >= history_start(before) and before - first > dt.timedelta(weeks=HISTORY_WEEKS - 1)
    today = Item.objects.filter(created_at__gte=before - dt.timedelta(days=1)).count()
    assert today >= TODAY_SHARE * 2 * ITEMS
    for model, field in ((Item, "created_at"), (Annotation, "submitted_at"), (RoutingDecision, "created_at"),
                         (AuditEvent, "at"), (Assignment, "created_at")):
        assert model.objects.aggregate(last=Max(field))["last"] <= after, model
    # Labels, decisions and reviews follow their items' arrival over the weeks, not at seeding time.
    assert len(Annotation.objects.dates("submitted_at", "week")) >= HISTORY_WEEKS - 1
    assert not Item.objects.filter(labeled_at__lt=F("created_at")).exists()
    # Expert slots were done on time in some weeks and late in others: the SLA chart has both.
    done = Assignment.objects.filter(kind=AssignmentKind.EXPERT, status=AssignmentStatus.COMPLETED)
    assert any(a.completed_at <= a.due_at for a in done) and any(a.completed_at > a.due_at for a in done)

    # Today's escalations wait for the experts (at 60 items a project not every expert's languages and
    # domains are among them; the full demo's figures are in docs/demo.md): the medical expert finds work.
    User = get_user_model()
    queues = {
        person.username: queue_summary(user=User.objects.get(username=person.username))
        for person in demo.DEMO_PEOPLE if person.role == "expert"
    }
    assert queues["dr.ada"]["assigned"] + queues["dr.ada"]["open_for_you"] > 0
    assert Assignment.objects.filter(kind=AssignmentKind.EXPERT, status=AssignmentStatus.OFFERED).count() >= 5
    assert "history: 8 weeks since" in out.getvalue()
    assert "Open work in the experts' queues" in out.getvalue()
