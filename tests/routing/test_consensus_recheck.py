"""Live routing learns what the replay learns: the reliability refresh stores the project's class prior,
routing hands it to the engine, and consensus items are routed again when revised estimates change them."""

import dataclasses

import pytest

from labeling.models import Item, ItemStatus
from routing import inputs, policies, reliabilities, selectors
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.reliability import RefitReliability
from routing.engine.types import AnnotatorReliability, Stage
from routing.models import RoutingDecision
from tests.routing.assignment_helpers import CLASSES, NOW, ingest_at, person, project, row
from work import claims, submissions

pytestmark = pytest.mark.django_db

LENIENT = dataclasses.replace(DEFAULT_POLICY, gold_check_rate=0.0, consensus_min_posterior=0.6)


def unpredicted(external_id):
    rows = row(external_id, {})
    del rows["predictions"]
    return rows


def label_next(user, proj, label):
    claimed = claims.assignment_claim_next(user=user, project=proj, now=NOW)
    submissions.assignment_submit(assignment_id=claimed.pk, user=user, label=label, now=NOW)
    return claimed.item_id


def test_a_consensus_resting_on_an_annotator_now_known_as_a_spammer_is_asked_again():
    proj = project(policy=LENIENT)
    crowd = person(name="c1")
    (item_id,) = ingest_at(proj, [unpredicted("x")])
    label_next(crowd, proj, "dog")
    item = Item.objects.get(pk=item_id)
    # One label of an annotator read at the role's prior (0.7) is enough under this lenient policy.
    assert (item.status, item.final_source, item.final_label) == (ItemStatus.LABELED, "consensus", "dog")
    assert reliabilities.consensus_recheck(project=proj, now=NOW) == 0
    spammer = tuple(tuple(1 / 3 for _ in CLASSES) for _ in CLASSES)
    reliabilities.annotator_reliabilities_save(project=proj,
        reliabilities=[AnnotatorReliability(crowd.pk, spammer, 50.0)])
    assert reliabilities.consensus_recheck(project=proj, now=NOW) == 1
    item.refresh_from_db()
    assert item.status == ItemStatus.IN_CROWD_REVIEW and item.final_label == ""
    latest = RoutingDecision.objects.filter(item=item).latest("id")
    assert (latest.stage, latest.outcome) == (Stage.RECHECK, "crowd")
    assert selectors.decisions_verify(project=proj).mismatches == ()


def test_recheck_leaves_projects_whose_policy_does_not_ask_for_it_alone():
    proj = project(policy=dataclasses.replace(LENIENT, consensus_recheck=False))
    crowd = person(name="c1")
    ingest_at(proj, [unpredicted("x")])
    label_next(crowd, proj, "dog")
    spammer = tuple(tuple(1 / 3 for _ in CLASSES) for _ in CLASSES)
    reliabilities.annotator_reliabilities_save(project=proj,
        reliabilities=[AnnotatorReliability(crowd.pk, spammer, 50.0)])
    assert reliabilities.consensus_recheck(project=proj, now=NOW) == 0


def test_the_refresh_stores_the_class_prior_and_routing_uses_it_as_the_replay_would():
    proj = project(policy=dataclasses.replace(LENIENT, consensus_min_posterior=0.99))
    people = [person(name=f"c{n}") for n in range(3)]
    ingest_at(proj, [unpredicted(f"x{n}") for n in range(4)])
    for user in people:
        for _ in range(4):
            label_next(user, proj, "cat")
    result = reliabilities.accuracy_refresh(now=NOW)
    stored = policies.policy_for_project(proj).class_prior
    assert stored["classes"] == list(CLASSES)
    # The learner's own figure, from the same labels.
    learner = RefitReliability(len(CLASSES))
    for n in range(4):
        for user in people:
            learner.add_label(n, user.pk, 0)
    learner.refit()
    assert stored["prior"] == pytest.approx(list(learner.class_prior()), abs=1e-6)
    assert stored["prior"][0] > 0.6
    assert result.rechecked == {"pets": 0}
    (new_id,) = ingest_at(proj, [unpredicted("y")])
    decision = RoutingDecision.objects.filter(item_id=new_id).latest("id")
    assert decision.inputs["item"]["class_prior"] == stored["prior"]
    assert selectors.decisions_verify(project=proj).mismatches == ()


def test_a_prior_learned_for_other_classes_is_not_used():
    proj = project(policy=LENIENT)
    policy = policies.policy_for_project(proj)
    policy.class_prior = {"classes": ["x", "y", "z"], "prior": [0.8, 0.1, 0.1]}
    policy.save()
    (item_id,) = ingest_at(proj, [unpredicted("x")])
    decision = RoutingDecision.objects.filter(item_id=item_id).latest("id")
    assert "class_prior" not in decision.inputs["item"]


def test_live_routing_holds_the_project_to_its_budget_and_records_the_count():
    strict = dataclasses.replace(DEFAULT_POLICY, gold_check_rate=0.0, consensus_min_posterior=0.99)
    proj = project(policy=dataclasses.replace(strict, target_labels_per_item=1.5))
    crowd = person(name="c1")
    ingest_at(proj, [unpredicted("x"), unpredicted("y")])
    first = label_next(crowd, proj, "dog")
    # 1 crowd label over 2 items is under the budget of 1.5: the unsure item asks again.
    assert Item.objects.get(pk=first).status == ItemStatus.IN_CROWD_REVIEW
    (loaded,) = inputs.route_inputs(item_ids=[first])
    assert loaded.item_input.project_labels_per_item == 0.5
    label_next(person(name="c2"), proj, "dog")
    third = label_next(person(name="c3"), proj, "cat")
    # Three labels over two items: the budget is spent, and the item routed last is accepted as it stands.
    last = Item.objects.get(pk=third)
    assert (last.status, last.final_source) == (ItemStatus.LABELED, "consensus")
    decision = RoutingDecision.objects.filter(item=last).latest("id")
    assert decision.reasons[0]["code"] == "budget_spent"
    assert decision.inputs["item"]["project_labels_per_item"] == 1.5
    assert selectors.decisions_verify(project=proj).mismatches == ()


def test_a_project_without_a_budget_pays_for_no_count():
    proj = project(policy=LENIENT)
    (item_id,) = ingest_at(proj, [unpredicted("x")])
    (loaded,) = inputs.route_inputs(item_ids=[item_id])
    assert loaded.item_input.project_labels_per_item is None
