"""Routing ingested items by the batch path (routing.fresh) stores what the per-item path stores: every
decision replays under `evaluate` from inputs equal to route_inputs', with the same digest, and the items'
states and slots are the ones their decisions ask for. Escalations and labeled items go item by item."""

import dataclasses

import pytest

from labeling.models import Item
from routing import fresh, inputs, offers, policies, selectors, services
from routing.decision_inputs import inputs_to_dict
from routing.engine.policy import DEFAULT_POLICY, evaluate, inputs_digest
from routing.engine.types import Comparison, FeatureRule, PolicyConfig, Stage, Trigger
from routing.models import Assignment, AssignmentKind, RoutingDecision
from routing.services import OUTCOME_STATUS
from tests.routing.persistence_helpers import CONFIDENT, ingest, make_project, random_rows

pytestmark = pytest.mark.django_db

def _publish(project, config):
    policy = policies.policy_for_project(project)
    policies.policy_version_publish(policy=policy, config=config, author=None, change_note="test")
    policy.refresh_from_db()
    return policy


def _mixed_batch(temperature=None):
    """A project sampling 30% of accepted items for review, a policy escalating very unsure items, and 300
    rows: confident and unsure predictions, one in 25 without a prediction, one in 30 with an annotation."""
    project = make_project()
    project.review_sample_rate = 0.3
    project.save(update_fields=["review_sample_rate"])
    config = dataclasses.replace(DEFAULT_POLICY, crowd_overlap=2, max_crowd_labels=4, triggers=(
        Trigger("entropy", Comparison.GT, 0.95, "very_unsure"),))
    policy = _publish(project, config)
    policy.model_temperature = temperature
    policy.save(update_fields=["model_temperature"])
    rows = random_rows(300)
    for row in rows[::25]:
        row.pop("predictions")
    for row in rows[1::30]:
        row["annotations"] = [{"annotator": "crowd1", "label": "cat", "role": "crowd"}]
    return project, policy, config, rows


@pytest.mark.parametrize("temperature", [None, 0.7])
def test_batch_routed_items_store_what_the_per_item_path_would(unrouted_ingest, monkeypatch, temperature):
    project, policy, config, rows = _mixed_batch(temperature)
    ids = list(ingest(project, rows).item_ids)
    taken = []
    original = fresh.fresh_route
    monkeypatch.setattr(services, "fresh_route", lambda **kw: taken.append(r := original(**kw)) or r)

    result = services.items_route(item_ids=ids, stage=Stage.INGEST)

    batch_ids = {item_id for r in taken for item_id, _ in r.routed}
    assert 200 < len(batch_ids) < 300  # labeled items and escalations went item by item
    assert sum(result.counts.values()) == len(ids) == len(result.decisions)
    assert [d.item_id for d in result.decisions] == sorted(ids)
    _assert_stored_as_per_item(project, policy, config, ids, batch_ids, temperature)


def _assert_stored_as_per_item(project, policy, config, ids, batch_ids, temperature=None):
    """Every item has one decision; those the batch path wrote equal what `evaluate` makes of route_inputs'
    reading of the stored item (inputs, digest, outcome, signals...), with the item state and slots it asks."""
    assert RoutingDecision.objects.filter(item_id__in=ids).count() == len(ids)
    loaded = {r.item.id: r for r in inputs.route_inputs(item_ids=ids)}
    live = policy.live_version
    for decision in RoutingDecision.objects.filter(item_id__in=batch_ids):
        r = loaded[decision.item_id]
        assert r.item_input.model_temperature == temperature
        expected = evaluate(r.item_input, config, r.reliabilities)
        assert decision.policy_version_id == live.id and decision.stage == Stage.INGEST
        assert decision.inputs == inputs_to_dict(r.item_input, r.reliabilities)
        assert decision.inputs_digest == inputs_digest(r.item_input, config, r.reliabilities)
        stored = expected.to_dict()
        assert (decision.outcome, decision.final_label, decision.final_source, decision.confidence) == (
            stored["outcome"], stored["final_label"], stored["final_source"], stored["confidence"])
        assert (decision.signals, decision.posterior, decision.reasons, decision.labels_requested) == (
            stored["signals"], stored["posterior"], stored["reasons"], stored["labels_requested"])
        item = Item.objects.get(pk=decision.item_id)
        assert item.status == OUTCOME_STATUS[expected.outcome]
        assert item.final_label == expected.final_label
        slots = sorted(Assignment.objects.filter(item_id=item.pk).values_list("kind", "decision_id"))
        if expected.outcome == "crowd":
            assert slots == [(AssignmentKind.CROWD, decision.id)] * expected.labels_requested
        else:
            sampled = offers.review_sampled(item_id=item.pk, rate=project.review_sample_rate)
            assert slots == ([(AssignmentKind.REVIEW, decision.id)] if sampled else [])
    assert {d.outcome for d in RoutingDecision.objects.filter(item_id__in=batch_ids)} >= {"accept", "crowd"}
    assert RoutingDecision.objects.filter(item_id__in=set(ids) - batch_ids, outcome="expert").exists()
    assert selectors.decisions_verify(project=project).mismatches == ()


def test_ingest_routes_the_items_it_created_from_its_own_values_as_if_read_back(monkeypatch):
    """Ingest hands routing the rows it inserted (labeling.signals.CreatedItem): the batch path takes their
    values instead of reading them, and stores exactly what reading them back would give (jsonb turns 1e20
    into an integer and -0.0 into 0, which canonical JSON equates). Values a JSON column does not keep (a
    Python caller's int keys and tuples) are read back instead; items with annotations or two predictions
    still go item by item."""
    project, policy, config, rows = _mixed_batch()
    for row in rows[2::40]:
        row["predictions"].append({"model_version": "clf-2", "probabilities": {"cat": 0.5, "dog": 0.5}})
    rows[3]["data"] = {"text": "keys", 7: "int key", "pair": (1, 2)}
    rows[4]["metadata"] = {"source": "s", "nested": {3: "int key"}}
    rows[5]["data"] = {"text": "big", "score": 1e20, "nested": [{"x": -0.0}, 2.5, None, True, 12345.678]}
    rows[6]["domain"], rows[6]["language"] = "pets/cats", "de"
    for row in rows[3:7]:
        row["predictions"][0]["probabilities"] = CONFIDENT  # accepted: by the batch path, not escalated
    taken = []
    original = fresh.fresh_route
    read = []
    original_lean = fresh._lean_items
    monkeypatch.setattr(services, "fresh_route", lambda **kw: taken.append(r := original(**kw)) or r)
    monkeypatch.setattr(fresh, "_lean_items", lambda ids: read.extend(ids) or original_lean(ids))

    ids = list(ingest(project, rows).item_ids)

    batch_ids = {item_id for r in taken for item_id, _ in r.routed}
    by_external = dict(Item.objects.filter(pk__in=ids).values_list("external_id", "id"))
    assert sorted(read) == sorted(by_external[f"it-{i}"] for i in (3, 4))  # only the values a JSON column changes
    assert {by_external[f"it-{i}"] for i in range(3, 7)} <= batch_ids
    assert not batch_ids & {by_external[f"it-{i}"] for i in [*range(1, 300, 30), *range(2, 300, 40)]}
    assert 200 < len(batch_ids) < 300
    _assert_stored_as_per_item(project, policy, config, ids, batch_ids)


def test_a_policy_with_feature_rules_routes_item_by_item(unrouted_ingest):
    project = make_project()
    _publish(project, PolicyConfig(feature_rules=(
        FeatureRule("data.text", "present", None, "has_text", "crowd"),)))
    ids = list(ingest(project, random_rows(20)).item_ids)
    routed = fresh.fresh_route(ids=ids, stage=Stage.INGEST, actor_id=None,
        version_of=lambda p: p.escalation_policy.live_version, configs={}, now=None)
    assert sorted(routed.leftover) == sorted(ids) and not routed.routed
