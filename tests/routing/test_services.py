"""Routing persistence: set-based routing on ingest, decision rows, re-route, overrides, reliabilities."""

import math

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import AutoField
from django.test.utils import CaptureQueriesContext

from core.models import AuditEvent
from labeling.models import Annotation, Item, ItemStatus, Prediction
from routing import fresh, offers, policies, reliabilities, selectors, services
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import AnnotatorReliability, Outcome, PolicyConfig, Stage
from routing.models import Assignment, AssignmentStatus, RoutingDecision
from tests.routing.assignment_helpers import MIDDLING, NOW, ingest_at, open_slots, person, project, row
from tests.routing.persistence_helpers import CONFIDENT, UNSURE, ingest, item_row, make_project, random_rows
from work import claims

pytestmark = pytest.mark.django_db

STATUS_OF = {"accept": ItemStatus.LABELED, "crowd": ItemStatus.IN_CROWD_REVIEW, "expert": ItemStatus.ESCALATED}


def crowd(*labels):
    return [{"annotator": f"crowd{i}", "label": label, "role": "crowd"} for i, label in enumerate(labels, start=1)]


class TestRoutingOnIngest:
    def test_every_ingested_item_gets_one_ingest_decision_and_the_matching_status(self):
        project = make_project()
        result = ingest(project, random_rows(40))
        decisions = {d.item_id: d for d in RoutingDecision.objects.all()}
        assert set(decisions) == set(result.item_ids)
        live = policies.policy_for_project(project).live_version
        for item in Item.objects.filter(id__in=result.item_ids):
            decision = decisions[item.id]
            assert decision.stage == Stage.INGEST
            assert decision.policy_version_id == live.id
            assert item.status == STATUS_OF[decision.outcome]
        # The seeded mix has both sure and unsure predictions, so both paths ran.
        assert {d.outcome for d in decisions.values()} >= {"accept", "crowd"}

    def test_accepted_item_carries_the_model_label_and_confident_item_is_labeled(self):
        project = make_project()
        ingest(project, [item_row("sure", CONFIDENT), item_row("unsure", UNSURE)])
        sure = Item.objects.get(external_id="sure")
        unsure = Item.objects.get(external_id="unsure")
        assert (sure.status, sure.final_label, sure.final_source) == (ItemStatus.LABELED, "cat", "model")
        assert sure.final_confidence == pytest.approx(0.97)
        assert sure.labeled_at is not None
        assert unsure.status == ItemStatus.IN_CROWD_REVIEW
        assert (unsure.final_label, unsure.final_source, unsure.final_confidence) == ("", "", None)

    def test_stored_inputs_name_the_prediction_and_annotation_rows_used(self):
        project = make_project()
        ingest(project, [item_row("a", UNSURE, annotations=crowd("dog", "dog"))])
        item = Item.objects.get(external_id="a")
        decision = RoutingDecision.objects.get(item=item)
        stored = decision.inputs["item"]
        assert [p["id"] for p in stored["predictions"]] == list(
            Prediction.objects.filter(item=item).values_list("id", flat=True)
        )
        assert sorted(a["id"] for a in stored["annotations"]) == sorted(
            Annotation.objects.filter(item=item).values_list("id", flat=True)
        )
        assert stored["predictions"][0]["probabilities"] == UNSURE
        assert len(decision.inputs_digest) == 64
        assert decision.signals["crowd_count"] == 2
        assert all(set(r) == {"code", "evidence"} for r in decision.reasons)

    # Fresh items take the batch path (routing.fresh), items ingested with labels the per-item one.
    @pytest.mark.parametrize("engine, labeled", [((services, "evaluate"), True), ((fresh, "evaluate_fresh"), False)])
    def test_a_failing_route_rejects_the_whole_ingest_batch(self, monkeypatch, engine, labeled):
        project = make_project()

        def boom(*args, **kwargs):
            raise RuntimeError("engine down")

        monkeypatch.setattr(*engine, boom)
        with pytest.raises(RuntimeError):
            ingest(project, [item_row("x", CONFIDENT, **({"annotations": crowd("cat")} if labeled else {}))])
        assert not Item.objects.filter(project=project).exists()
        assert not RoutingDecision.objects.exists()


def _bulk_batches(n: int, model=RoutingDecision) -> int:
    """INSERT statements the database driver needs for n rows: Django splits a bulk insert by the
    driver's parameter limit (999 on SQLite, none on PostgreSQL); that is not a per-item query."""
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField)]
    return math.ceil(n / connection.ops.bulk_batch_size(fields, [None] * n)) if n else 0


def test_routing_is_set_based_query_count_does_not_grow_with_items(unrouted_ingest, django_assert_max_num_queries):
    project = make_project()
    rows = random_rows(1100)
    for i in range(0, 1100, 10):
        rows[i]["annotations"] = crowd("cat", "dog")
    ids = ingest(project, rows).item_ids
    assert not RoutingDecision.objects.exists()
    users = get_user_model().objects.filter(username__in=["crowd1", "crowd2"])
    reliabilities.annotator_reliabilities_save(
        project=project,
        reliabilities=[
            AnnotatorReliability(u.id, ((0.8, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.1, 0.8)), 20.0) for u in users
        ],
    )
    small, large = list(ids[:100]), list(ids[100:])
    with CaptureQueriesContext(connection) as ctx:
        services.items_route(item_ids=small, stage=Stage.INGEST)
    q_small = len(ctx.captured_queries)
    # The work routing creates is bulk-inserted too: at most crowd_overlap (2) slots per item.
    allowance = _bulk_batches(len(large)) - _bulk_batches(len(small)) + _bulk_batches(2 * len(large), Assignment)
    with django_assert_max_num_queries(q_small + allowance):
        result = services.items_route(item_ids=large, stage=Stage.INGEST)
    assert sum(result.counts.values()) == 1000
    assert RoutingDecision.objects.filter(stage=Stage.INGEST).count() == 1100
    assert not Item.objects.filter(project=project, status=ItemStatus.NEW).exists()
    # Per-item queries would need at least one query per item.
    assert q_small + allowance < 100


def test_route_after_annotations_records_an_annotation_decision():
    project = make_project()
    ingest(project, [item_row("a", UNSURE)])
    item = Item.objects.get(external_id="a")
    ingest(project, [item_row("a", UNSURE, annotations=crowd("dog", "dog", "dog"))])
    result = services.items_route(item_ids=[item.id], stage=Stage.ANNOTATION)
    item.refresh_from_db()
    decision = result.decisions[0]
    assert decision.stage == Stage.ANNOTATION
    assert RoutingDecision.objects.get(pk=decision.pk).inputs["item"]["annotations"]
    assert item.status == STATUS_OF[decision.outcome]
    assert sum(result.counts.values()) == 1


def test_draft_version_cannot_route(admin_user):
    project = make_project()
    ingest(project, [item_row("a", CONFIDENT)])
    policy = policies.policy_for_project(project)
    draft = policies.policy_draft_save(policy=policy, config=DEFAULT_POLICY, author=admin_user, change_note="")
    with pytest.raises(ValidationError, match="draft"):
        services.items_route(
            item_ids=list(Item.objects.values_list("id", flat=True)), stage=Stage.REROUTE, policy_version=draft
        )


class TestReroute:
    def test_reroute_writes_a_new_decision_and_an_audit_event_with_before_and_after(self, admin_user):
        project = make_project()
        ingest(project, [item_row("a", UNSURE)])
        item = Item.objects.get(external_id="a")
        services.item_final_label_override(item=item, label="bird", actor=admin_user, reason="checked by hand")
        decision = services.item_reroute(item=item, actor=admin_user, note="new policy")
        assert decision.stage == Stage.REROUTE
        assert decision.actor == admin_user
        assert RoutingDecision.objects.filter(item=item).count() == 2
        event = AuditEvent.objects.get(action="item.reroute", object_id=str(item.id))
        assert event.actor == admin_user
        assert event.data["before"]["final_label"] == "bird"
        assert event.data["before"]["status"] == ItemStatus.LABELED
        assert event.data["after"]["status"] == ItemStatus.IN_CROWD_REVIEW
        assert event.data["decision_id"] == decision.id
        item.refresh_from_db()
        assert (item.status, item.final_label) == (ItemStatus.IN_CROWD_REVIEW, "")

    def test_trail_lists_decisions_oldest_first(self, admin_user):
        project = make_project()
        ingest(project, [item_row("a", CONFIDENT)])
        item = Item.objects.get(external_id="a")
        services.item_reroute(item=item, actor=admin_user)
        assert [d.stage for d in selectors.decision_trail(item)] == [Stage.INGEST, Stage.REROUTE]


class TestFinalLabelOverride:
    def test_override_sets_the_label_and_audits_before_and_after(self, admin_user):
        project = make_project()
        ingest(project, [item_row("a", CONFIDENT)])
        item = Item.objects.get(external_id="a")
        services.item_final_label_override(item=item, label="dog", actor=admin_user, reason="photo shows a dog")
        item.refresh_from_db()
        assert (item.final_label, item.final_source, item.status) == ("dog", "expert", ItemStatus.LABELED)
        event = AuditEvent.objects.get(action="item.final_label_override")
        assert event.data["before"] == {
            "status": "labeled",
            "final_label": "cat",
            "final_source": "model",
            "final_confidence": 0.97,
        }
        assert event.data["after"]["final_label"] == "dog"
        assert event.data["reason"] == "photo shows a dog"

    @pytest.mark.parametrize(
        ("label", "reason", "message"),
        [("wolf", "why", "'wolf' is not a class"), ("dog", "  ", "note saying why")],
    )
    def test_bad_override_is_refused_and_changes_nothing(self, admin_user, label, reason, message):
        project = make_project()
        ingest(project, [item_row("a", CONFIDENT)])
        item = Item.objects.get(external_id="a")
        with pytest.raises(ValidationError, match=message):
            services.item_final_label_override(item=item, label=label, actor=admin_user, reason=reason)
        item.refresh_from_db()
        assert item.final_label == "cat"
        assert not AuditEvent.objects.filter(action="item.final_label_override").exists()


class TestReliabilities:
    def test_stored_reliabilities_reach_the_engine_and_the_stored_inputs(self):
        project = make_project()
        ingest(project, [item_row("a", UNSURE, annotations=crowd("dog"))])
        annotator = get_user_model().objects.get(username="crowd1")
        confusion = ((0.9, 0.05, 0.05), (0.05, 0.9, 0.05), (0.05, 0.05, 0.9))
        reliabilities.annotator_reliabilities_save(
            project=project, reliabilities=[AnnotatorReliability(annotator.id, confusion, 12.0)]
        )
        item = Item.objects.get(external_id="a")
        decision = services.items_route(item_ids=[item.id], stage=Stage.REROUTE).decisions[0]
        stored = RoutingDecision.objects.get(pk=decision.pk).inputs["reliabilities"]
        assert stored == [
            {"annotator_id": annotator.id, "confusion": [list(r) for r in confusion], "n_observations": 12.0}
        ]

    def test_reliability_estimated_for_other_classes_is_ignored(self):
        project = make_project()
        ingest(project, [item_row("a", UNSURE, annotations=crowd("dog"))])
        annotator = get_user_model().objects.get(username="crowd1")
        reliabilities.annotator_reliabilities_save(
            project=project, reliabilities=[AnnotatorReliability(annotator.id, ((0.9, 0.05, 0.05),) * 3, 5.0)]
        )
        project.classes = [{"name": n} for n in ("bird", "cat", "dog")]
        project.save()
        item = Item.objects.get(external_id="a")
        decision = services.items_route(item_ids=[item.id], stage=Stage.REROUTE).decisions[0]
        assert RoutingDecision.objects.get(pk=decision.pk).inputs["reliabilities"] == []

    def test_confusion_of_the_wrong_shape_is_refused(self):
        project = make_project()
        with pytest.raises(ValidationError, match="3x3"):
            reliabilities.annotator_reliabilities_save(
                project=project, reliabilities=[AnnotatorReliability(1, ((1.0, 0.0), (0.0, 1.0)), 1.0)]
            )


def test_route_counts_by_outcome_match_the_items_statuses():
    project = make_project()
    ids = ingest(project, random_rows(60)).item_ids
    result = services.items_route(item_ids=ids, stage=Stage.REROUTE)
    by_status = {o: Item.objects.filter(status=STATUS_OF[o]).count() for o in ("accept", "crowd", "expert")}
    assert dict(result.counts) == by_status
    assert set(result.counts) == {o.value for o in Outcome}


def test_withdrawn_work_someone_claimed_meanwhile_stays_theirs_but_cancelled_work_ends():
    proj = project("withdraw", policy=PolicyConfig(crowd_overlap=2, gold_check_rate=0.0))
    c1, c2 = person(), person()
    [item_id] = ingest_at(proj, [row("a", MIDDLING)])
    first, second = open_slots(item_id)
    claims.assignment_claim_next(user=c1, project=proj, now=NOW)
    claims.assignment_claim_next(user=c2, project=proj, now=NOW)  # both claimed after a plan read them offered
    offers.work_apply(offers.WorkPlan(withdraw=[first.pk], cancel=[second.pk]), now=NOW)
    statuses = dict(Assignment.objects.filter(item_id=item_id).values_list("id", "status"))
    assert statuses == {first.pk: AssignmentStatus.ACTIVE, second.pk: AssignmentStatus.CANCELLED}
