"""Scheduled assignment jobs: lease expiry, SLA breaches, the waiting queue, accuracy refresh, schedules."""

import datetime as dt
import io

import numpy as np
import pytest
from django.core import mail
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Success
from django_q.scheduler import scheduler

from core.models import AuditEvent
from experts.models import Domain, ExpertAccuracy, Role
from experts.services import on_call_rotation_create
from labeling.models import Item
from routing import inputs, page_selectors, reliabilities, selectors
from routing.engine.types import PolicyConfig
from routing.models import AnnotatorReliability, Assignment, AssignmentKind, AssignmentStatus, RoutingDecision
from tests.routing.assignment_helpers import (
    CONFIDENT,
    ESCALATE_UNSURE,
    MIDDLING,
    NOW,
    UNSURE,
    ingest_at,
    open_slots,
    person,
    project,
    row,
    slots,
)
from work import claims, exceptions, jobs, submissions
from workbench.schedules import schedules_ensure

pytestmark = pytest.mark.django_db
# The schedules ensure_schedules makes: every one but the dashboards' (their migration makes those).
ENSURED = ~Q(func__startswith="dashboards.tasks.")
LATER = NOW + dt.timedelta(minutes=5)


class TestLeaseExpiry:
    def test_an_expired_crowd_lease_returns_the_item_to_the_queue_and_submitting_it_conflicts(self, settings):
        settings.ASSIGNMENT_LEASE_MINUTES = 10
        crowd, other = person(Role.CROWD), person(Role.CROWD)
        proj = project(policy=PolicyConfig(crowd_overlap=1, gold_check_rate=0))
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=NOW)
        assert jobs.assignments_expire(now=NOW + dt.timedelta(minutes=9)) == 0
        # Past the lease the person may no longer submit, even before the job has run.
        with pytest.raises(exceptions.AssignmentConflict):
            submissions.assignment_submit(
                assignment_id=claimed.pk, user=crowd, label="cat", now=NOW + dt.timedelta(minutes=10)
            )
        assert jobs.assignments_expire(now=NOW + dt.timedelta(minutes=11)) == 1
        claimed.refresh_from_db()
        assert claimed.status == AssignmentStatus.EXPIRED
        [fresh] = open_slots(item_id)
        assert (fresh.kind, fresh.assignee_id, fresh.due_at) == ("crowd", None, claimed.due_at)
        assert claims.assignment_claim_next(user=other, project=proj, now=NOW + dt.timedelta(minutes=12)) == fresh
        assert AuditEvent.objects.filter(action="assignment.expire", object_id=str(claimed.pk)).exists()

    def test_an_expired_expert_lease_is_offered_to_the_next_best_expert(self, settings):
        settings.ASSIGNMENT_LEASE_MINUTES = 30
        ada = person(Role.EXPERT, name="ada", expertise={"pets": 5})
        bob = person(Role.EXPERT, name="bob", expertise={"pets": 2})
        proj = project(policy=ESCALATE_UNSURE)
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        claimed = claims.assignment_claim_next(user=ada, project=proj, now=NOW)
        assert claimed.assignee_id == ada.pk
        assert jobs.assignments_expire(now=NOW + dt.timedelta(hours=1)) == 1
        [fresh] = open_slots(item_id)
        assert (fresh.kind, fresh.assignee_id, fresh.status) == ("expert", bob.pk, "offered")

    def test_an_expired_gold_check_is_not_handed_out_again(self, settings):
        proj = project(policy=PolicyConfig(gold_check_rate=1.0))
        crowd = person(Role.CROWD)
        [gold_item] = ingest_at(proj, [row("g", CONFIDENT, gold="cat")])
        ingest_at(proj, [row("w", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=NOW)
        assert claimed.kind == AssignmentKind.GOLD_CHECK
        assert jobs.assignments_expire(now=NOW + dt.timedelta(days=1)) == 1
        assert open_slots(gold_item) == []


class TestSlaBreaches:
    def test_breached_expert_slots_go_to_the_on_call_expert_who_is_emailed(
        self, django_capture_on_commit_callbacks, sync_tasks
    ):
        ada = person(Role.EXPERT, name="ada", expertise={"pets": 5}, capacity=1)
        bob = person(Role.EXPERT, name="bob", expertise={"pets": 2})
        proj = project(policy=ESCALATE_UNSURE)
        [offered, _] = ingest_at(proj, [row("a", UNSURE), row("b", UNSURE)])
        # ada has capacity 1, so bob got the second; make the rotation put bob on call.
        on_call_rotation_create(
            domain=Domain.objects.get(path="pets"),
            name="Pets on call",
            starts_on=NOW.date(),
            members=[bob.expert, ada.expert],
        )
        assert open_slots(offered)[0].assignee_id == ada.pk
        due = open_slots(offered)[0].due_at
        assert jobs.sla_breaches_handle(now=due - dt.timedelta(minutes=1)) == 0
        with django_capture_on_commit_callbacks(execute=True):
            moved = jobs.sla_breaches_handle(now=due + dt.timedelta(minutes=1))
        # bob already holds the second item, so only ada's is moved.
        assert moved == 1
        [fresh] = open_slots(offered)
        assert (fresh.assignee_id, fresh.status, fresh.due_at) == (bob.pk, "offered", due)
        assert Assignment.objects.get(item_id=offered, assignee=ada).status == AssignmentStatus.CANCELLED
        assert [m.to for m in mail.outbox] == [[bob.email]]
        assert "On call" in mail.outbox[0].subject
        event = AuditEvent.objects.get(action="assignment.sla_breach")
        assert event.data["previous_assignee_id"] == ada.pk and event.data["on_call_user_id"] == bob.pk
        assert event.data["rotation"] == "Pets on call"
        # Nothing more to do on the next run.
        assert jobs.sla_breaches_handle(now=due + dt.timedelta(minutes=6)) == 0

    def test_without_a_rotation_nothing_moves(self):
        person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        ingest_at(proj, [row("a", UNSURE)])
        assert jobs.sla_breaches_handle(now=NOW + dt.timedelta(days=2)) == 0


class TestCrowdBreaches:
    def test_crowd_work_nobody_claimed_by_the_deadline_goes_to_an_expert(
        self, django_capture_on_commit_callbacks, sync_tasks
    ):
        # Three crowd labels wanted, two crowd annotators: the third slot of "a" is one neither may take.
        proj = project(policy=PolicyConfig(crowd_overlap=3, max_crowd_labels=3, gold_check_rate=0.0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        ada = person(Role.EXPERT, name="ada", expertise={"pets": 4})
        [a, b] = ingest_at(proj, [row("a", MIDDLING), row("b", MIDDLING)])
        for crowd in (c1, c2):
            held = claims.assignment_claim_next(user=crowd, project=proj, now=NOW)
            assert held.item_id == a
            submissions.assignment_submit(assignment_id=held.pk, user=crowd, label="cat", now=NOW)
        due = open_slots(a)[0].due_at
        # c1 starts on "b" shortly before the deadline and is still at it when the job runs.
        working = claims.assignment_claim_next(user=c1, project=proj, now=due - dt.timedelta(minutes=10))
        assert working.item_id == b

        assert jobs.crowd_breaches_escalate(now=due - dt.timedelta(minutes=1)) == 0
        with django_capture_on_commit_callbacks(execute=True):
            assert jobs.crowd_breaches_escalate(now=due + dt.timedelta(minutes=1)) == 2

        for item_id in (a, b):
            decision = RoutingDecision.objects.filter(item_id=item_id).latest("id")
            assert (decision.stage, decision.outcome) == ("crowd_overdue", "expert")
            assert decision.reasons[0]["code"] == "crowd_overdue" and decision.inputs["item"]["crowd_overdue"] is True
            assert decision.expert_ranking["candidates"]  # ranked like any escalation
        [expert_a] = open_slots(a)
        assert (expert_a.kind, expert_a.assignee_id, expert_a.status) == ("expert", ada.pk, "offered")
        # The offer nobody could take expired unclaimed: that is what keeps the item with the experts.
        assert [(s.status, s.assignee_id) for s in slots(a, kind="crowd", status="expired")] == [("expired", None)]
        titles = [e.title for e in page_selectors.item_trail(item=Item.objects.get(pk=a)) if e.kind == "assignment"]
        assert "Crowd label assignment: nobody took it" in titles
        # On "b" the unclaimed crowd slots are withdrawn; the one c1 is working on finishes.
        assert sorted((s.kind, s.assignee_id, s.status) for s in open_slots(b)) == [
            ("crowd", c1.pk, "active"),
            ("expert", ada.pk, "offered"),
        ]
        assert not Assignment.objects.filter(
            kind=AssignmentKind.CROWD, status=AssignmentStatus.OFFERED, item_id__in=[a, b]
        ).exists()
        assert [m.to for m in mail.outbox] == [[ada.email]]
        assert jobs.crowd_breaches_escalate(now=due + dt.timedelta(minutes=6)) == 0
        # c1 finishes "b" late: the item stays with the expert instead of drifting back to the crowd.
        submissions.assignment_submit(assignment_id=working.pk, user=c1, label="cat", now=due + dt.timedelta(minutes=6))
        late = RoutingDecision.objects.filter(item_id=b).latest("id")
        assert (late.stage, late.outcome, late.reasons[0]["code"]) == ("annotation", "expert", "crowd_overdue")
        assert [(s.kind, s.assignee_id) for s in open_slots(b)] == [("expert", ada.pk)]
        assert selectors.decisions_verify(project=proj).mismatches == ()

        # The expert's label settles the item.
        claimed = claims.assignment_claim_next(user=ada, project=proj, now=due + dt.timedelta(minutes=7))
        submissions.assignment_submit(
            assignment_id=claimed.pk, user=ada, label="cat", rationale="whiskers", now=due + dt.timedelta(minutes=8)
        )
        settled = Item.objects.get(pk=claimed.item_id)
        assert (settled.final_label, settled.final_source) == ("cat", "expert")

    def test_crowd_slots_within_their_deadline_and_other_kinds_are_left_alone(self):
        proj = project(policy=ESCALATE_UNSURE)
        person(Role.EXPERT, name="ada")
        [crowd_item, expert_item] = ingest_at(proj, [row("m", MIDDLING), row("u", UNSURE)])
        later = NOW + dt.timedelta(hours=23)
        assert jobs.crowd_breaches_escalate(now=later) == 0
        assert {s.kind for s in open_slots(crowd_item)} == {"crowd"}
        # An overdue expert slot is the SLA job's (on-call), not this one's.
        assert jobs.crowd_breaches_escalate(now=NOW + dt.timedelta(days=2)) == 1
        assert RoutingDecision.objects.filter(item_id=expert_item, stage="crowd_overdue").count() == 0


class TestCrowdBreachEdges:
    def test_an_offer_claimed_while_the_job_runs_is_left_and_its_item_not_routed(self, monkeypatch):
        proj = project(policy=PolicyConfig(crowd_overlap=1, gold_check_rate=0.0))
        c1 = person(Role.CROWD)
        person(Role.EXPERT, name="ada", expertise={"pets": 4})
        [a, b] = ingest_at(proj, [row("a", MIDDLING), row("b", MIDDLING)])
        late = open_slots(a)[0].due_at + dt.timedelta(minutes=1)
        lock_items = Item.objects.select_for_update

        def claim_first(*args, **kwargs):
            # c1 takes "a" between the job's read of the overdue offers and its locks.
            assert claims.assignment_claim_next(user=c1, project=proj, now=late).item_id == a
            return lock_items(*args, **kwargs)

        monkeypatch.setattr(Item.objects, "select_for_update", claim_first)
        assert jobs.crowd_breaches_escalate(now=late) == 1
        assert [(s.kind, s.assignee_id, s.status) for s in open_slots(a)] == [("crowd", c1.pk, "active")]
        assert not RoutingDecision.objects.filter(item_id=a, stage="crowd_overdue").exists()
        assert RoutingDecision.objects.filter(item_id=b, stage="crowd_overdue", outcome="expert").exists()

    def test_a_lapsed_crowd_lease_on_an_item_gone_to_the_experts_is_not_replaced(self, settings):
        settings.ASSIGNMENT_LEASE_MINUTES = 30
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0.0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        person(Role.EXPERT, name="ada", expertise={"pets": 4})
        [kept, escalated] = ingest_at(proj, [row("k", MIDDLING), row("e", MIDDLING)])
        held = [claims.assignment_claim_next(user=u, project=proj, now=NOW) for u in (c1, c2, c1)]
        assert [h.item_id for h in held] == [kept, kept, escalated]
        # c1's slot of "e" is left to finish when the item goes to the experts.
        Item.objects.filter(pk=escalated).update(status="escalated")
        assert jobs.assignments_expire(now=NOW + dt.timedelta(hours=1)) == 3
        # "k" is still with the crowd: both its lapsed slots come back to the queue; "e" gets no new one.
        assert [(s.kind, s.assignee_id) for s in open_slots(kept)] == [("crowd", None), ("crowd", None)]
        assert len(slots(kept)) == 4 and len(slots(escalated)) == 2
        assert [s.status for s in slots(escalated)] == ["expired", "offered"]


class TestWaitingQueue:
    def test_a_waiting_slot_is_offered_once_a_qualified_expert_comes_on_shift(self):
        monday_morning = NOW.replace(hour=6)
        day = person(
            Role.EXPERT,
            name="day",
            time_zone="UTC",
            shifts=[(0, dt.time(9), dt.time(17))],
        )
        proj = project(policy=PolicyConfig(triggers=ESCALATE_UNSURE.triggers, sla_hours=1, gold_check_rate=0))
        [item_id] = ingest_at(proj, [row("a", UNSURE)], now=monday_morning)
        [slot] = open_slots(item_id)
        # Off shift until 09:00, after the 07:00 deadline: nobody eligible, the slot waits.
        assert slot.assignee_id is None
        assert jobs.waiting_assign(now=monday_morning.replace(hour=8)) == 0
        assert jobs.waiting_assign(now=monday_morning.replace(hour=9, minute=30)) == 1
        slot.refresh_from_db()
        assert (slot.assignee_id, slot.status) == (day.pk, AssignmentStatus.OFFERED)
        event = AuditEvent.objects.get(action="assignment.offer", object_id=str(slot.pk))
        assert event.data["explanation"].startswith("picked day")
        assert jobs.waiting_assign(now=monday_morning.replace(hour=10)) == 0


class TestAccuracyRefresh:
    def test_gold_checks_and_agreement_become_accuracy_and_reliabilities(self):
        proj = project(policy=PolicyConfig(gold_check_rate=1.0, crowd_overlap=1))
        good, bad = person(Role.CROWD, name="good"), person(Role.CROWD, name="bad")
        ingest_at(proj, [row(f"g{i}", CONFIDENT, gold="dog") for i in range(4)])
        ingest_at(proj, [row("w", MIDDLING)])
        for user, label in ((good, "dog"), (bad, "bird")):
            for _ in range(4):
                claimed = claims.assignment_claim_next(user=user, project=proj, now=LATER)
                assert claimed.kind == AssignmentKind.GOLD_CHECK
                submissions.assignment_submit(assignment_id=claimed.pk, user=user, label=label, now=LATER)
        result = reliabilities.accuracy_refresh(now=LATER)
        pets = Domain.objects.get(path="pets")
        rows = {
            (a.expert.user.username, a.domain_id): (a.gold_correct, a.gold_total)
            for a in ExpertAccuracy.objects.select_related("expert__user")
        }
        assert rows == {("good", None): (4, 4), ("good", pets.pk): (4, 4), ("bad", None): (0, 4),
            ("bad", pets.pk): (0, 4)}
        assert ExpertAccuracy.objects.get(expert__user=good, domain=None).accuracy > 0.8
        assert ExpertAccuracy.objects.get(expert__user=bad, domain=None).accuracy < 0.8
        assert result.reliabilities == {"pets": 2}
        confusion = {r.annotator_id: np.array(r.confusion) for r in AnnotatorReliability.objects.filter(project=proj)}
        dog = 1
        assert confusion[good.pk][dog, dog] > 0.7 > confusion[bad.pk][dog, dog]
        # Routing reads them.
        assert set(inputs.reliabilities_for(project_ids=[proj.pk], annotator_ids=[good.pk],
            projects={proj.pk: proj})[proj.pk]) == {good.pk}

    def test_an_expert_is_not_credited_for_agreeing_with_their_own_label(self):
        ada = person(Role.EXPERT, name="ada")
        crowd = person(Role.CROWD)
        proj = project(policy=PolicyConfig(triggers=ESCALATE_UNSURE.triggers, crowd_overlap=1, gold_check_rate=0))
        ingest_at(proj, [row("a", UNSURE)])
        ingest_at(proj, [row("b", MIDDLING)])
        for user, label in ((ada, "dog"), (crowd, "cat")):
            claimed = claims.assignment_claim_next(user=user, project=proj, now=LATER)
            submissions.assignment_submit(assignment_id=claimed.pk, user=user, label=label, rationale="because",
                now=LATER)
        reliabilities.accuracy_refresh(now=LATER)
        assert not ExpertAccuracy.objects.filter(expert__user=ada).exists()
        crowd_row = ExpertAccuracy.objects.get(expert__user=crowd, domain=None)
        assert (crowd_row.agreement_correct, crowd_row.agreement_total) == (1, 1)

    def test_annotations_after_now_are_not_counted(self):
        proj = project(policy=PolicyConfig(gold_check_rate=1.0))
        crowd = person(Role.CROWD)
        ingest_at(proj, [row("g", CONFIDENT, gold="dog"), row("w", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        submissions.assignment_submit(assignment_id=claimed.pk, user=crowd, label="dog", now=LATER)
        result = reliabilities.accuracy_refresh(now=NOW)
        assert result.accuracy_rows == 0 and not ExpertAccuracy.objects.exists()


class TestSchedules:
    def test_ensure_is_idempotent(self):
        schedules_ensure()
        schedules_ensure()
        schedules = {s.func: (s.schedule_type, s.minutes, s.repeats) for s in Schedule.objects.filter(ENSURED)}
        assert schedules == {
            "work.tasks.assignments_expire": (Schedule.MINUTES, 1, -1),
            "work.tasks.sla_breaches_handle": (Schedule.MINUTES, 5, -1),
            "work.tasks.crowd_breaches_escalate": (Schedule.MINUTES, 5, -1),
            "work.tasks.waiting_assign": (Schedule.MINUTES, 5, -1),
            "routing.tasks.accuracy_refresh": (Schedule.HOURLY, None, -1),
            "pilot.tasks.calibration_recommendations_enqueue": (Schedule.DAILY, None, -1),
        }

    def test_the_scheduler_runs_the_expiry_job(self, monkeypatch, settings):
        monkeypatch.setattr(Conf, "SYNC", True)
        settings.ASSIGNMENT_LEASE_MINUTES = 1
        crowd = person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=timezone.now() - dt.timedelta(hours=1))
        schedules_ensure()
        Schedule.objects.filter(ENSURED).update(next_run=timezone.now() - dt.timedelta(seconds=1))
        scheduler()
        claimed.refresh_from_db()
        assert claimed.status == AssignmentStatus.EXPIRED
        assert Success.objects.filter(func="work.tasks.assignments_expire", result=1).exists()
        # Every job ran once and rescheduled itself in the future.
        assert set(Success.objects.filter(ENSURED).values_list("func", flat=True)) == {
            "work.tasks.assignments_expire",
            "work.tasks.sla_breaches_handle",
            "work.tasks.crowd_breaches_escalate",
            "work.tasks.waiting_assign",
            "routing.tasks.accuracy_refresh",
            "pilot.tasks.calibration_recommendations_enqueue",
            # Queued by the one above, one per project (run at once here: the queue is synchronous).
            "pilot.tasks.calibration_recommend",
        }
        assert not Schedule.objects.filter(ENSURED, next_run__lte=timezone.now()).exists()

    def test_ensure_schedules_command(self):
        out = io.StringIO()
        call_command("ensure_schedules", stdout=out)
        assert "assignments_expire: work.tasks.assignments_expire (every 1 min)" in out.getvalue()
        assert Schedule.objects.filter(ENSURED).count() == 6
