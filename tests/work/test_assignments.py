"""Assignments: the work routing creates, claiming it, submitting, declining, reviewing, gold checks."""

import dataclasses
import datetime as dt

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from core.models import AuditEvent
from experts.models import Expert, Role
from labeling import memberships
from labeling.models import Annotation, Item, ItemStatus, Project, Review
from routing import inputs, offers, policies, selectors, services
from routing import tasks as routing_tasks
from routing.engine.types import PolicyConfig
from routing.models import Assignment, AssignmentKind, AssignmentStatus, RoutingDecision
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
from work import claim_sql, claims, exceptions, submissions
from work import selectors as work_selectors

pytestmark = pytest.mark.django_db
LATER = NOW + dt.timedelta(minutes=5)


def claim_and_submit(user, proj, label, *, now=LATER, **kw):
    assignment = claims.assignment_claim_next(user=user, project=proj, now=now)
    assert assignment is not None, f"{user} found nothing to claim"
    return assignment, submissions.assignment_submit(assignment_id=assignment.pk, user=user, label=label, now=now, **kw)


class TestRoutingCreatesWork:
    def test_crowd_decision_opens_the_requested_crowd_slots_with_an_sla_deadline(self):
        proj = project(policy=PolicyConfig(crowd_overlap=3, max_crowd_labels=5, sla_hours=6, gold_check_rate=0))
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        decision = RoutingDecision.objects.get(item_id=item_id)
        created = slots(item_id)
        assert decision.outcome == "crowd" and decision.labels_requested == 3
        assert [(s.kind, s.status, s.assignee_id) for s in created] == [("crowd", "offered", None)] * 3
        assert {s.due_at for s in created} == {NOW + dt.timedelta(hours=6)}
        assert {s.decision_id for s in created} == {decision.pk}

    def test_model_accepted_item_gets_no_work(self):
        proj = project()
        [item_id] = ingest_at(proj, [row("a", CONFIDENT)])
        assert Item.objects.get(pk=item_id).status == ItemStatus.LABELED
        assert slots(item_id) == []

    def test_escalation_ranks_the_roster_offers_the_best_expert_and_stores_the_ranking(self):
        ada = person(Role.EXPERT, name="ada", display_name="Ada", expertise={"pets": 5})
        person(Role.EXPERT, name="bob", display_name="Bob", expertise={"pets": 2})
        person(Role.EXPERT, name="vet", display_name="Vet", expertise={"vets": 5})
        proj = project(policy=ESCALATE_UNSURE)
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        decision = RoutingDecision.objects.get(item_id=item_id)
        [slot] = slots(item_id)
        assert (slot.kind, slot.status, slot.assignee_id) == ("expert", "offered", ada.pk)
        assert slot.due_at == NOW + dt.timedelta(hours=24)
        ranking = decision.expert_ranking
        assert [c["display_name"] for c in ranking["candidates"]] == ["Ada", "Bob"]
        assert ranking["explanation"].startswith("picked Ada: pets proficiency 5")
        assert "Bob ranked 2" in ranking["explanation"]
        assert [r["code"] for r in ranking["rejected"]] == ["domain"]

    def test_offers_within_one_routing_spread_by_load(self):
        ada = person(Role.EXPERT, name="ada", expertise={"pets": 3}, capacity=2)
        bob = person(Role.EXPERT, name="bob", expertise={"pets": 3}, capacity=2)
        proj = project(policy=ESCALATE_UNSURE)
        ids = ingest_at(proj, [row(f"u{i}", UNSURE) for i in range(5)])
        assignees = [s.assignee_id for i in ids for s in slots(i)]
        # Two each (capacity), the fifth waits unassigned in the experts' queue.
        assert sorted(assignees, key=lambda a: (a is None, a)) == [ada.pk, ada.pk, bob.pk, bob.pk, None]

    def test_nobody_eligible_leaves_the_slot_waiting_in_the_queue(self):
        person(Role.EXPERT, name="vet", display_name="Vet", expertise={"vets": 5})
        proj = project(policy=ESCALATE_UNSURE)
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        [slot] = slots(item_id)
        assert (slot.kind, slot.status, slot.assignee_id) == ("expert", "offered", None)
        explanation = RoutingDecision.objects.get(item_id=item_id).expert_ranking["explanation"]
        assert explanation.startswith("nobody eligible") and "no expertise covering pets" in explanation

    def test_offered_expert_is_emailed_once_committed(self, django_capture_on_commit_callbacks, sync_tasks):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        with django_capture_on_commit_callbacks(execute=True):
            ingest_at(proj, [row("a", UNSURE), row("b", UNSURE)])
        assert [m.to for m in mail.outbox] == [[ada.email]]
        assert "2 new expert assignments" in mail.outbox[0].subject

    def test_offer_emails_are_queued_for_a_worker_not_sent_in_the_request(self, django_capture_on_commit_callbacks):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        with django_capture_on_commit_callbacks(execute=True):
            ingest_at(proj, [row("a", UNSURE)])
        assert mail.outbox == []
        [queued] = OrmQ.objects.all()
        assert queued.task["func"] == offers.EMAILS_TASK
        [[address, subject, _body]] = queued.task["args"][0]
        assert (address, subject) == (ada.email, "1 new expert assignment for you")
        assert routing_tasks.emails_send(*queued.task["args"]) == 1
        assert [m.to for m in mail.outbox] == [[ada.email]]

    def test_a_failing_address_does_not_stop_the_other_emails(self, monkeypatch):
        sent = []

        def send_mail(subject, body, sender, to):
            if to == ["bad@example.org"]:
                raise OSError("mailbox unavailable")
            sent.append(to)

        monkeypatch.setattr(offers, "send_mail", send_mail)
        outbox = [("bad@example.org", "s", "b"), ("ada@example.org", "s", "b")]
        assert offers.emails_send(outbox) == 1
        assert sent == [["ada@example.org"]]

    def test_decisions_with_rankings_still_verify(self):
        person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        ingest_at(proj, [row("a", UNSURE), row("b", MIDDLING), row("c", CONFIDENT)])
        report = selectors.decisions_verify()
        assert report.checked == 3 and report.mismatches == ()


class TestClaim:
    def test_crowd_claims_the_soonest_due_crowd_slot_and_gets_a_lease(self, settings):
        settings.ASSIGNMENT_LEASE_MINUTES = 10
        crowd = person(Role.CROWD)
        proj = project(policy=PolicyConfig(sla_hours=48, gold_check_rate=0))
        [late] = ingest_at(proj, [row("late", MIDDLING)])
        proj_policy = PolicyConfig(sla_hours=2, gold_check_rate=0)
        policies.policy_version_publish(
            policy=policies.policy_for_project(proj), config=proj_policy, author=None, change_note="faster"
        )
        [soon] = ingest_at(proj, [row("soon", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        assert claimed.item_id == soon
        assert (claimed.status, claimed.assignee_id, claimed.claimed_at) == ("active", crowd.pk, LATER)
        assert claimed.lease_expires_at == LATER + dt.timedelta(minutes=10)
        # The next claim skips the item the person already holds.
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER).item_id == late

    def test_roles_see_only_their_queue_and_experts_only_what_they_cover(self):
        crowd = person(Role.CROWD)
        reviewer = person(Role.REVIEWER)
        german = person(Role.EXPERT, name="german", expertise={"pets": 3}, languages=["de"], capacity=0)
        vet = person(Role.EXPERT, name="vet", expertise={"pets/dogs": 3}, capacity=0)
        outsider = get_user_model().objects.create_user(username="outsider")
        proj = project(policy=ESCALATE_UNSURE)
        [escalated] = ingest_at(proj, [row("a", UNSURE, domain="pets/dogs/puppies")])
        # Nobody had capacity, so the slot waits unassigned in the experts' queue.
        assert open_slots(escalated)[0].assignee_id is None
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER) is None
        assert claims.assignment_claim_next(user=reviewer, project=proj, now=LATER) is None
        assert claims.assignment_claim_next(user=outsider, project=proj, now=LATER) is None
        # Capacity 0 blocks the open queue; with room, coverage and language decide.
        Expert.objects.filter(user__in=[german, vet]).update(capacity=5)
        assert claims.assignment_claim_next(user=german, project=proj, now=LATER) is None
        claimed = claims.assignment_claim_next(user=vet, project=proj, now=LATER)
        assert claimed.item_id == escalated and claimed.kind == AssignmentKind.EXPERT

    def test_own_offers_come_before_the_open_queue(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        [offered] = ingest_at(proj, [row("a", UNSURE)])
        claimed = claims.assignment_claim_next(user=ada, project=proj, now=LATER)
        assert claimed.item_id == offered and claimed.status == AssignmentStatus.ACTIVE

    def test_capacity_limits_claims_from_the_open_queue(self):
        crowd = person(Role.CROWD, capacity=2)
        proj = project()
        ingest_at(proj, [row(f"m{i}", MIDDLING) for i in range(3)])
        taken = [claims.assignment_claim_next(user=crowd, project=proj, now=LATER) for _ in range(3)]
        assert [t is not None for t in taken] == [True, True, False]

    def test_a_claim_comes_with_its_item_and_counts_towards_the_draw_sequence(self):
        crowd = person(Role.CROWD)
        proj = project(policy=PolicyConfig(gold_check_rate=0))
        ingest_at(proj, [row("m", MIDDLING, domain="pets/dogs")])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        # The item, its domain and project are there without another query.
        with CaptureQueriesContext(connection) as queries:
            assert (claimed.item.external_id, claimed.item.domain.path) == ("m", "pets/dogs")
            assert claimed.item.project is proj and claimed.item.data == Item.objects.get(pk=claimed.item_id).data
        assert len(queries.captured_queries) == 1  # only the comparison's own read
        # Every claim bumps the counter, found work or not.
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER) is None
        assert Expert.objects.get(user=crowd).claims_made == 2

    def test_an_inactive_roster_member_claims_nothing(self):
        crowd = person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("m", MIDDLING)])
        Expert.objects.filter(user=crowd).update(active=False)
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER) is None
        assert not Assignment.objects.filter(assignee=crowd).exists()

    def test_queue_summary_counts(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        ingest_at(proj, [row("a", UNSURE)], now=NOW - dt.timedelta(hours=30))  # due 6 h ago
        ingest_at(proj, [row("b", UNSURE)], now=NOW - dt.timedelta(hours=21))  # due in 3 h
        ingest_at(proj, [row("c", UNSURE)], now=NOW)  # due in 24 h
        assert work_selectors.queue_summary(user=ada, project=proj, now=NOW) == {
            "assigned": 3,
            "due_soon": 1,
            "overdue": 1,
            "open_for_you": 0,
        }
        crowd = person(Role.CROWD)
        ingest_at(proj, [row("m", MIDDLING)])
        assert work_selectors.queue_summary(user=crowd, now=NOW)["open_for_you"] == 2

    def test_assignment_for_user_hides_other_peoples_work(self):
        crowd, other = person(Role.CROWD), person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        mine = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        assert work_selectors.assignment_for_user(assignment_id=mine.pk, user=crowd) == mine
        with pytest.raises(exceptions.AssignmentNotFound):
            work_selectors.assignment_for_user(assignment_id=mine.pk, user=other)


class TestSubmit:
    def test_submission_completes_the_assignment_and_routing_follows_at_once(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        a1, _ = claim_and_submit(c1, proj, "cat", confidence=4, time_spent_ms=1500)
        a1.refresh_from_db()
        assert a1.status == AssignmentStatus.COMPLETED and a1.completed_at == LATER
        assert a1.annotation.label == "cat" and a1.annotation.time_spent_ms == 1500
        decision = RoutingDecision.objects.filter(item_id=item_id).latest("id")
        assert decision.stage == "annotation" and decision.actor_id == c1.pk
        _, annotation = claim_and_submit(c2, proj, "cat")
        item = Item.objects.get(pk=item_id)
        assert (item.status, item.final_label, item.final_source) == (ItemStatus.LABELED, "cat", "consensus")
        assert annotation.item.final_label == "cat"
        assert open_slots(item_id) == []

    def test_a_submit_reads_its_item_once_and_routes_it_from_that_read(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        claim_and_submit(c1, proj, "cat")
        held = claims.assignment_claim_next(user=c2, project=proj, now=LATER)
        with CaptureQueriesContext(connection) as queries:
            submissions.assignment_submit(assignment_id=held.pk, user=c2, label="cat", now=LATER)
        item_reads = [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith("SELECT") and "labeling_item" in q["sql"].split("WHERE")[0]
        ]
        assert len(item_reads) == 1, item_reads
        # The routing that read nothing more still used the live policy and both labels.
        decision = RoutingDecision.objects.filter(item_id=item_id).latest("id")
        assert decision.policy_version_id == inputs.live_version_of(Project.objects.get(pk=proj.pk)).pk
        assert [a["label"] for a in decision.inputs["item"]["annotations"]] == ["cat", "cat"]
        assert Item.objects.get(pk=item_id).final_label == "cat"

    def test_routing_inputs_from_the_locked_item_equal_routings_own_read(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        [item_id] = ingest_at(proj, [row("a", MIDDLING, domain="pets/dogs")])
        claim_and_submit(c1, proj, "dog")
        held = claims.assignment_claim_next(user=c2, project=proj, now=LATER)
        locked = work_selectors.assignment_locked(assignment_id=held.pk, user_id=c2.pk)
        [own] = inputs.route_inputs(item_ids=[item_id])
        [given] = inputs.route_inputs(item_ids=[item_id], locked_items=[locked.item])
        assert given.item is locked.item
        assert given.item_input == own.item_input and given.reliabilities == own.reliabilities
        assert given.item_input.annotations[0].label == "dog" and given.item_input.domain == "pets/dogs"
        assert inputs.live_version_of(given.item.project) == inputs.live_version_of(own.item.project)
        assert work_selectors.assignment_locked(assignment_id=held.pk, user_id=c1.pk) is None  # not c1's

    def test_disagreement_asks_the_crowd_for_one_more_label(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        claim_and_submit(c1, proj, "cat")
        claim_and_submit(c2, proj, "dog")
        [fresh] = open_slots(item_id)
        assert (fresh.kind, fresh.assignee_id, fresh.created_at) == ("crowd", None, LATER)
        assert fresh.decision == RoutingDecision.objects.filter(item_id=item_id).latest("id")

    def test_accepting_an_item_cancels_its_open_slots_even_claimed_ones(self):
        proj = project(policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0))
        c1 = person(Role.CROWD)
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        held = claims.assignment_claim_next(user=c1, project=proj, now=LATER)
        assert len(open_slots(item_id)) == 2
        # Labels imported from elsewhere reach a consensus before anyone here submits.
        imported = [{"annotator": f"ext{i}", "label": "cat", "role": "crowd"} for i in range(3)]
        ingest_at(proj, [row("a", MIDDLING, annotations=imported)], now=LATER)
        assert Item.objects.get(pk=item_id).status == ItemStatus.LABELED
        assert open_slots(item_id) == []
        assert {s.status for s in slots(item_id)} == {AssignmentStatus.CANCELLED}
        with pytest.raises(exceptions.AssignmentConflict):
            submissions.assignment_submit(assignment_id=held.pk, user=c1, label="cat", now=LATER)

    def test_expert_label_is_accepted_and_sent_for_review(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE)
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        _, annotation = claim_and_submit(ada, proj, "dog", rationale="ears are floppy", factors=[])
        item = Item.objects.get(pk=item_id)
        assert annotation.role == "expert" and annotation.rationale == "ears are floppy"
        assert (item.status, item.final_label, item.final_source) == (ItemStatus.LABELED, "dog", "expert")
        [review] = open_slots(item_id)
        assert (review.kind, review.assignee_id) == (AssignmentKind.REVIEW, None)

    def test_invalid_submission_names_each_field_and_changes_nothing(self):
        ada = person(Role.EXPERT, name="ada")
        proj = project(policy=ESCALATE_UNSURE, decision_factors=["blurry"])
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        claimed = claims.assignment_claim_next(user=ada, project=proj, now=LATER)
        with pytest.raises(exceptions.AssignmentInvalid) as caught:
            submissions.assignment_submit(
                assignment_id=claimed.pk,
                user=ada,
                label="horse",
                rationale="  ",
                factors=["blurry", "dark"],
                confidence=6,
                time_spent_ms=10 * 60 * 1000,  # 10 minutes, claimed 0 s ago
                now=LATER,
            )
        assert set(caught.value.errors) == {"label", "rationale", "factors", "confidence", "time_spent_ms"}
        assert "'horse' is not a class" in caught.value.errors["label"][0]
        assert "'dark'" in caught.value.errors["factors"][0]
        claimed.refresh_from_db()
        assert claimed.status == AssignmentStatus.ACTIVE
        assert not Annotation.objects.filter(item_id=item_id).exists()
        assert RoutingDecision.objects.filter(item_id=item_id).count() == 1

    def test_time_spent_within_the_elapsed_time_is_accepted(self):
        crowd = person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        annotation = submissions.assignment_submit(
            assignment_id=claimed.pk, user=crowd, label="cat", time_spent_ms=60_000,
            now=LATER + dt.timedelta(seconds=59)
        )
        assert annotation.time_spent_ms == 60_000

    def test_rationale_required_by_the_project_applies_to_crowd_work(self):
        crowd = person(Role.CROWD)
        proj = project(rationale_required=True)
        ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        with pytest.raises(exceptions.AssignmentInvalid) as caught:
            submissions.assignment_submit(assignment_id=claimed.pk, user=crowd, label="cat", now=LATER)
        assert list(caught.value.errors) == ["rationale"]

    def test_someone_elses_assignment_is_not_found_and_a_completed_one_conflicts(self):
        crowd, other = person(Role.CROWD), person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        claimed, _ = claim_and_submit(crowd, proj, "cat")
        with pytest.raises(exceptions.AssignmentNotFound):
            submissions.assignment_submit(assignment_id=claimed.pk, user=other, label="cat", now=LATER)
        with pytest.raises(exceptions.AssignmentConflict):
            submissions.assignment_submit(assignment_id=claimed.pk, user=crowd, label="dog", now=LATER)
        assert Annotation.objects.filter(annotator=crowd).count() == 1


class TestDecline:
    def test_expert_decline_passes_the_item_to_the_next_best_then_to_the_queue(
        self, django_capture_on_commit_callbacks, sync_tasks
    ):
        ada = person(Role.EXPERT, name="ada", expertise={"pets": 5})
        bob = person(Role.EXPERT, name="bob", expertise={"pets": 3})
        proj = project(policy=ESCALATE_UNSURE)
        [item_id] = ingest_at(proj, [row("a", UNSURE)])
        [first] = open_slots(item_id)
        assert first.assignee_id == ada.pk
        with pytest.raises(exceptions.AssignmentInvalid):
            submissions.assignment_decline(assignment_id=first.pk, user=ada, reason=" ", now=LATER)
        with django_capture_on_commit_callbacks(execute=True):
            declined = submissions.assignment_decline(
                assignment_id=first.pk, user=ada, reason="conflict of interest", now=LATER
            )
        assert (declined.status, declined.decline_reason) == ("declined", "conflict of interest")
        [second] = open_slots(item_id)
        assert (second.assignee_id, second.due_at, second.decision_id) == (bob.pk, first.due_at, first.decision_id)
        assert [m.to for m in mail.outbox] == [[bob.email]]
        event = AuditEvent.objects.get(action="assignment.decline", object_id=str(first.pk))
        assert event.data["offered_to"] == bob.pk and event.data["reason"] == "conflict of interest"
        assert "picked bob" in event.data["explanation"] and "ada excluded" in event.data["explanation"]
        submissions.assignment_decline(assignment_id=second.pk, user=bob, reason="on leave", now=LATER)
        [third] = open_slots(item_id)
        assert third.assignee_id is None  # nobody left: waits in the experts' queue
        # A decliner never gets the item back from the queue.
        assert claims.assignment_claim_next(user=ada, project=proj, now=LATER) is None

    def test_crowd_decline_returns_a_fresh_open_slot(self):
        c1, c2 = person(Role.CROWD), person(Role.CROWD)
        proj = project()
        [item_id] = ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=c1, project=proj, now=LATER)
        submissions.assignment_decline(assignment_id=claimed.pk, user=c1, reason="cannot see the image", now=LATER)
        assert [(s.kind, s.assignee_id) for s in open_slots(item_id)] == [("crowd", None), ("crowd", None)]
        assert claims.assignment_claim_next(user=c1, project=proj, now=LATER) is None
        assert claims.assignment_claim_next(user=c2, project=proj, now=LATER).item_id == item_id

    def test_declining_twice_conflicts(self):
        crowd = person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        submissions.assignment_decline(assignment_id=claimed.pk, user=crowd, reason="unsure", now=LATER)
        with pytest.raises(exceptions.AssignmentConflict):
            submissions.assignment_decline(assignment_id=claimed.pk, user=crowd, reason="unsure", now=LATER)


class TestReview:
    def _reviewed_item(self, **project_kw):
        proj = project(review_sample_rate=1.0, **project_kw)
        reviewer = person(Role.REVIEWER)
        [item_id] = ingest_at(proj, [row("a", CONFIDENT)])
        claimed = claims.assignment_claim_next(user=reviewer, project=proj, now=LATER)
        assert claimed is not None and claimed.kind == AssignmentKind.REVIEW and claimed.item_id == item_id
        return proj, reviewer, claimed

    def test_sample_rate_sends_model_accepted_items_to_review_reproducibly(self):
        proj = project(review_sample_rate=0.3)
        ids = ingest_at(proj, [row(f"c{i}", CONFIDENT) for i in range(60)])
        sampled = {a.item_id for a in Assignment.objects.filter(kind=AssignmentKind.REVIEW)}
        assert 5 <= len(sampled) <= 35
        assert sampled == {i for i in ids if offers.review_sampled(item_id=i, rate=0.3)}
        services.items_reroute(item_ids=ids, actor=None, note="again")
        assert Assignment.objects.filter(kind=AssignmentKind.REVIEW).count() == len(sampled)

    def test_agree_keeps_the_label(self):
        _, reviewer, claimed = self._reviewed_item()
        review = submissions.review_submit(assignment_id=claimed.pk, user=reviewer, verdict="agree", now=LATER)
        item = Item.objects.get(pk=claimed.item_id)
        assert (review.verdict, review.previous_label, review.label) == ("agree", "cat", "cat")
        assert (item.final_label, item.final_source) == ("cat", "model")
        claimed.refresh_from_db()
        assert claimed.status == AssignmentStatus.COMPLETED

    def test_override_needs_a_label_and_a_reason_and_replaces_the_final_label(self):
        _, reviewer, claimed = self._reviewed_item()
        with pytest.raises(exceptions.AssignmentInvalid) as caught:
            submissions.review_submit(assignment_id=claimed.pk, user=reviewer, verdict="override", label="cat",
                now=LATER)
        assert set(caught.value.errors) == {"label", "reason"}
        review = submissions.review_submit(
            assignment_id=claimed.pk, user=reviewer, verdict="override", label="dog", reason="clearly a dog", now=LATER
        )
        item = Item.objects.get(pk=claimed.item_id)
        assert (review.previous_label, review.label, review.reason) == ("cat", "dog", "clearly a dog")
        assert (item.final_label, item.final_source) == ("dog", "expert")
        assert AuditEvent.objects.filter(action="item.final_label_override", object_id=str(item.pk)).exists()
        assert Review.objects.filter(item=item).count() == 1

    def test_a_review_of_a_label_slot_is_refused(self):
        crowd = person(Role.CROWD)
        proj = project()
        ingest_at(proj, [row("a", MIDDLING)])
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        with pytest.raises(exceptions.AssignmentInvalid):
            submissions.review_submit(assignment_id=claimed.pk, user=crowd, verdict="agree", now=LATER)


class TestGoldChecks:
    def test_a_crowd_claim_can_be_a_gold_check_that_looks_like_crowd_work(self):
        proj = project(policy=PolicyConfig(gold_check_rate=1.0),
                       field_visibility={"data.secret": ["expert", "reviewer"]})
        crowd = person(Role.CROWD)
        [gold_item] = ingest_at(proj, [row("g", CONFIDENT, gold="dog")])
        [work_item] = ingest_at(proj, [row("w", MIDDLING)])
        decisions_before = RoutingDecision.objects.filter(item_id=gold_item).count()
        claimed = claims.assignment_claim_next(user=crowd, project=proj, now=LATER)
        assert (claimed.kind, claimed.item_id, claimed.status) == (AssignmentKind.GOLD_CHECK, gold_item, "active")
        payload = work_selectors.assignment_payload(claimed)
        assert payload["kind"] == "crowd" and "secret" not in payload["item"]["data"]
        annotation = submissions.assignment_submit(assignment_id=claimed.pk, user=crowd, label="dog", now=LATER)
        assert annotation.role == "crowd"
        assert RoutingDecision.objects.filter(item_id=gold_item).count() == decisions_before
        # The gold item was seen: the next claim is the ordinary crowd slot (no other gold item is left).
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER).item_id == work_item

    def test_gold_check_draws_are_seeded_by_person_and_claim_number(self):
        proj = project(policy=PolicyConfig(gold_check_rate=0.5, crowd_overlap=1, max_crowd_labels=1))
        crowd = person(Role.CROWD)
        ingest_at(proj, [row(f"g{i}", CONFIDENT, gold="cat") for i in range(12)])
        ingest_at(proj, [row(f"w{i}", MIDDLING) for i in range(12)])
        kinds = [claims.assignment_claim_next(user=crowd, project=proj, now=LATER).kind for _ in range(12)]
        expected = [claims.gold_draw(user_id=crowd.pk, sequence=n) < 0.5 for n in range(12)]
        assert [k == AssignmentKind.GOLD_CHECK for k in kinds] == expected
        assert set(kinds) == {AssignmentKind.GOLD_CHECK, AssignmentKind.CROWD}
        draws = [claims.gold_draw(user_id=crowd.pk, sequence=n) < 0.5 for n in range(400)]
        assert 0.4 < np.mean(draws) < 0.6

    def test_no_gold_checks_at_rate_zero(self):
        proj = project(policy=PolicyConfig(gold_check_rate=0.0))
        crowd = person(Role.CROWD)
        ingest_at(proj, [row("g", CONFIDENT, gold="cat"), row("w", MIDDLING)])
        assert claims.assignment_claim_next(user=crowd, project=proj, now=LATER).kind == AssignmentKind.CROWD


def _claim_statement_head(user, worker, scope):
    """The slot the claim's statement (claim_sql.queue_claim) takes for the worker, given back at once (the
    savepoint is rolled back); their capacity is lifted, so only the queue decides."""
    savepoint = transaction.savepoint()
    try:
        claimed = claim_sql.queue_claim(
            user=user, worker=dataclasses.replace(worker, capacity=1_000), project=scope, now=LATER, lease_end=LATER
        )
    finally:
        transaction.savepoint_rollback(savepoint)
    return claimed.assignment.id if claimed is not None else None


class TestQueueSql:
    """The claim's statement takes the slot the ORM's claimable_slots (the reference) puts first."""

    def test_head_of_every_queue_matches_the_orm(self):
        crowd = person(Role.CROWD)
        reviewer = person(Role.REVIEWER)
        experts = [
            person(Role.EXPERT, name="all", expertise={"pets": 3}, languages=["en", "pt-BR"], capacity=0),
            person(Role.EXPERT, name="dogs", expertise={"pets/dogs": 3}, languages=["pt"], capacity=0),
            person(Role.EXPERT, name="under", expertise={"pets/dog_s": 3}, languages=["en"], capacity=0),
            person(Role.EXPERT, name="none", expertise={"vets": 3}, languages=["en"], capacity=0),
        ]
        proj = project(policy=ESCALATE_UNSURE, review_sample_rate=1.0)
        other = project(slug="other", policy=ESCALATE_UNSURE)
        rows = [
            row("d-en", UNSURE, domain="pets/dogs", language="en"),
            row("d-pt", UNSURE, domain="pets/dogs/puppies", language="pt-BR"),
            row("x-pt", UNSURE, domain="pets/dogsx", language="pt"),
            row("u-en", UNSURE, domain="pets/dogXs/a", language="EN"),
            row("none", UNSURE, domain="", language=""),
            row("m", MIDDLING),
            row("c", CONFIDENT),
        ]
        for n, r in enumerate(rows):
            ingest_at(proj if n % 2 else other, [r], now=NOW + dt.timedelta(minutes=n))
        for user in [crowd, reviewer, *experts]:
            worker = work_selectors.worker_for(user=user)
            for scope in (None, proj, other):
                queue = list(work_selectors.claimable_slots(user=user, worker=worker, project=scope))
                head = _claim_statement_head(user, worker, scope)
                assert head == (queue[0].id if queue else None), (user.username, scope)
        dogs = work_selectors.worker_for(user=experts[1])
        assert {a.item.external_id for a in work_selectors.claimable_slots(user=experts[1], worker=dogs)} == {
            "d-pt",
            "none",
        }
        # "_" in an expertise path is a character, not a LIKE wildcard.
        under = work_selectors.worker_for(user=experts[2])
        assert {a.item.external_id for a in work_selectors.claimable_slots(user=experts[2], worker=under)} == {"none"}
        assert _claim_statement_head(experts[2], under, None) == (
            work_selectors.claimable_slots(user=experts[2], worker=under).get().id
        )

    def test_both_take_only_from_projects_the_claimer_is_a_member_of(self):
        crowd = person(Role.CROWD)
        pets, other = project(), project(slug="other")
        ingest_at(pets, [row("p", MIDDLING)], now=NOW + dt.timedelta(minutes=1))
        ingest_at(other, [row("o", MIDDLING)], now=NOW)  # the earlier deadline: first in line
        memberships.membership_remove(project=other, user=crowd)
        worker = work_selectors.worker_for(user=crowd)
        for scope, expected in ((None, "p"), (pets, "p"), (other, None)):
            queue = list(work_selectors.claimable_slots(user=crowd, worker=worker, project=scope))
            assert [a.item.external_id for a in queue][:1] == ([expected] if expected else [])
            assert _claim_statement_head(crowd, worker, scope) == (queue[0].id if queue else None)
        assert claims.assignment_claim_next(user=crowd, project=other, now=NOW) is None
        assert claims.assignment_claim_next(user=crowd, now=NOW).item.external_id == "p"
