"""verify_decisions replays stored decisions from their stored inputs under their own policy version."""

import dataclasses
import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeling.models import Item
from routing import policies, reliabilities, selectors, services
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import AnnotatorReliability, Stage
from routing.models import RoutingDecision
from tests.routing.persistence_helpers import CONFIDENT, UNSURE, ingest, item_row, make_project, random_rows

pytestmark = pytest.mark.django_db


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_decisions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def routed(admin_user):
    """Two projects with decisions at every stage, annotations and stored reliabilities."""
    pets = make_project("pets")
    rows = random_rows(30)
    rows[0]["annotations"] = [
        {"annotator": "crowd1", "label": "dog", "role": "crowd"},
        {"annotator": "crowd2", "label": "dog", "role": "crowd"},
    ]
    rows[1]["annotations"] = [{"annotator": "expert1", "label": "bird", "role": "expert"}]
    ingest(pets, rows)
    crowd1 = get_user_model().objects.get(username="crowd1")
    reliabilities.annotator_reliabilities_save(
        project=pets,
        reliabilities=[AnnotatorReliability(crowd1.id, ((0.7, 0.2, 0.1), (0.1, 0.8, 0.1), (0.25, 0.25, 0.5)), 9.0)],
    )
    ids = list(Item.objects.filter(project=pets).values_list("id", flat=True))
    services.items_route(item_ids=ids[:5], stage=Stage.ANNOTATION)
    services.items_reroute(item_ids=ids[5:8], actor=admin_user)
    other = make_project("other")
    ingest(other, [item_row("o-1", CONFIDENT), item_row("o-2", UNSURE)])
    return pets, other


def test_untouched_decisions_all_replay(routed):
    output = verify()
    total = RoutingDecision.objects.count()
    assert total == 30 + 5 + 3 + 2
    assert f"checked {total} decisions, 0 mismatches" in output


def test_replay_includes_the_stored_reliabilities(routed):
    pets, _ = routed
    with_reliability = [d for d in RoutingDecision.objects.filter(stage=Stage.ANNOTATION) if d.inputs["reliabilities"]]
    assert with_reliability
    report = selectors.decisions_verify(project=pets)
    assert report.mismatches == ()


def test_a_tampered_probability_is_caught(routed):
    decision = RoutingDecision.objects.filter(item__project__slug="pets", outcome="accept").first()
    inputs = decision.inputs
    probabilities = inputs["item"]["predictions"][0]["probabilities"]
    top = max(probabilities, key=probabilities.get)
    probabilities[top] = round(probabilities[top] - 0.001, 6)
    RoutingDecision.objects.filter(pk=decision.pk).update(inputs=inputs)
    with pytest.raises(CommandError, match=rf"1 decisions do not replay: ids {decision.pk}$"):
        verify()
    (mismatch,) = selectors.decisions_verify().mismatches
    assert mismatch.decision_id == decision.pk
    assert "inputs_digest" in mismatch.fields


@pytest.mark.parametrize(
    ("field", "value"),
    [("outcome", "expert"), ("final_label", "bird"), ("confidence", 0.5), ("reasons", []), ("labels_requested", 7)],
)
def test_a_tampered_outcome_field_is_caught(routed, field, value):
    decision = RoutingDecision.objects.filter(outcome="accept").exclude(**{field: value}).first()
    RoutingDecision.objects.filter(pk=decision.pk).update(**{field: value})
    (mismatch,) = selectors.decisions_verify().mismatches
    assert mismatch == selectors.Mismatch(decision.pk, (field,))


def test_a_tampered_annotation_label_is_caught(routed):
    decision = RoutingDecision.objects.filter(stage=Stage.ANNOTATION).exclude(inputs__item__annotations=[]).first()
    inputs = decision.inputs
    inputs["item"]["annotations"][0]["label"] = "cat"
    RoutingDecision.objects.filter(pk=decision.pk).update(inputs=inputs)
    assert [m.decision_id for m in selectors.decisions_verify().mismatches] == [decision.pk]


def test_project_option_limits_the_check(routed):
    decision = RoutingDecision.objects.filter(item__project__slug="pets").first()
    RoutingDecision.objects.filter(pk=decision.pk).update(inputs_digest="0" * 64)
    assert "checked 2 decisions, 0 mismatches" in verify("--project", "other")
    with pytest.raises(CommandError):
        verify("--project", "pets")
    with pytest.raises(CommandError, match="no project"):
        verify("--project", "nope")


def test_publishing_a_new_policy_does_not_change_what_old_decisions_replay_to(routed, admin_user):
    pets, _ = routed
    policy = policies.policy_for_project(pets)
    strict = dataclasses.replace(DEFAULT_POLICY, auto_accept_min_top_probability=0.999, auto_accept_min_margin=0.99)
    policies.policy_version_publish(policy=policy, config=strict, author=admin_user, change_note="stricter")
    accepted = RoutingDecision.objects.filter(item__project=pets, final_source="model", stage=Stage.INGEST)
    assert accepted.exists()
    assert {d.policy_version.number for d in accepted} == {1}
    assert selectors.decisions_verify().mismatches == ()
    # The same items routed now are judged by v2, and those decisions replay too.
    services.items_route(item_ids=[d.item_id for d in accepted], stage=Stage.REROUTE)
    assert set(
        RoutingDecision.objects.filter(stage=Stage.REROUTE, policy_version__number=2).values_list("outcome", flat=True)
    ) == {"crowd"}
    assert selectors.decisions_verify().mismatches == ()


def test_chunked_iteration_checks_every_decision(routed):
    report = selectors.decisions_verify(chunk_size=7)
    assert report.checked == RoutingDecision.objects.count()
    assert report.mismatches == ()


def test_malformed_inputs_are_reported_not_crashed_on(routed):
    decision = RoutingDecision.objects.first()
    RoutingDecision.objects.filter(pk=decision.pk).update(inputs={"item": {"classes": []}})
    (mismatch,) = selectors.decisions_verify().mismatches
    assert mismatch.fields == ("inputs",)
