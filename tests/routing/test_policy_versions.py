"""Escalation policy versions: default on first use, immutable publishes, rollbacks, drafts, preview."""

import dataclasses

import pytest
from django.core.exceptions import ValidationError
from django.db.models import RestrictedError

from core.models import AuditEvent
from labeling.models import Item
from routing import policies, services
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import FeatureRule, PolicyConfig, Stage
from routing.models import EscalationPolicy, PolicyVersion, RoutingDecision
from routing.selectors import config_diff
from tests.routing.persistence_helpers import CONFIDENT, UNSURE, ingest, item_row, make_project

pytestmark = pytest.mark.django_db

LENIENT = dataclasses.replace(
    DEFAULT_POLICY, auto_accept_min_top_probability=0.3, auto_accept_min_margin=0.0, auto_accept_max_entropy=1.0
)


def test_first_use_creates_version_one_with_the_default_policy_once():
    project = make_project()
    policy = policies.policy_for_project(project)
    again = policies.policy_for_project(project)
    assert again.pk == policy.pk
    assert EscalationPolicy.objects.count() == 1
    (version,) = PolicyVersion.objects.all()
    assert (version.number, version.is_draft) == (1, False)
    assert PolicyConfig.from_dict(version.config) == DEFAULT_POLICY
    assert policy.live_version == version


def test_publish_adds_a_live_version_leaves_the_old_one_and_audits_before_and_after(admin_user):
    project = make_project()
    policy = policies.policy_for_project(project)
    v1 = policy.live_version
    v1_config = dict(v1.config)
    v2 = policies.policy_version_publish(
        policy=policy, config=LENIENT, author=admin_user, change_note="fewer crowd items"
    )
    policy.refresh_from_db()
    v1.refresh_from_db()
    assert v2.number == 2 and not v2.is_draft
    assert policy.live_version == v2
    assert v1.config == v1_config
    assert v2.config["auto_accept_min_top_probability"] == 0.3
    event = AuditEvent.objects.get(action="policy_version.publish")
    assert event.actor == admin_user
    assert event.object_id == str(v2.pk)
    assert event.data["before"]["auto_accept_min_top_probability"] == 0.9
    assert event.data["after"]["auto_accept_min_top_probability"] == 0.3
    assert (event.data["before_version"], event.data["number"]) == (1, 2)
    assert event.data["change_note"] == "fewer crowd items"


@pytest.mark.parametrize(
    ("config", "note", "message"),
    [
        (dataclasses.replace(DEFAULT_POLICY, auto_accept_min_margin=1.5), "x", "auto_accept_min_margin"),
        (dataclasses.replace(DEFAULT_POLICY, crowd_overlap=4, max_crowd_labels=2), "x", "max_crowd_labels"),
        (
            dataclasses.replace(DEFAULT_POLICY, feature_rules=(FeatureRule("data.text", "bogus", 1, "r"),)),
            "x",
            "unknown operator",
        ),
        (LENIENT, "   ", "note saying why"),
    ],
)
def test_invalid_publish_is_refused_and_writes_nothing(admin_user, config, note, message):
    policy = policies.policy_for_project(make_project())
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match=message):
        policies.policy_version_publish(policy=policy, config=config, author=admin_user, change_note=note)
    assert PolicyVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_rollback_publishes_a_copy_of_the_old_version(admin_user):
    policy = policies.policy_for_project(make_project())
    v1 = policy.live_version
    policies.policy_version_publish(policy=policy, config=LENIENT, author=admin_user, change_note="lenient")
    v3 = policies.policy_version_rollback(policy=policy, version=v1, author=admin_user, note="too many errors")
    policy.refresh_from_db()
    assert v3.number == 3
    assert v3.config == v1.config
    assert policy.live_version == v3
    assert PolicyVersion.objects.count() == 3
    event = AuditEvent.objects.get(action="policy_version.rollback")
    assert event.data["copied_from_version"] == 1
    assert event.data["before"]["auto_accept_min_top_probability"] == 0.3


def test_rollback_to_another_policys_version_is_refused(admin_user):
    policy = policies.policy_for_project(make_project("a"))
    other = policies.policy_for_project(make_project("b"))
    with pytest.raises(ValidationError, match="another policy"):
        policies.policy_version_rollback(policy=policy, version=other.live_version, author=admin_user, note="x")


def test_drafts_are_numbered_but_never_go_live(admin_user):
    project = make_project()
    ingest(project, [item_row("u", UNSURE)])
    policy = policies.policy_for_project(project)
    draft = policies.policy_draft_save(policy=policy, config=LENIENT, author=admin_user, change_note="calibrated")
    policy.refresh_from_db()
    assert draft.is_draft and draft.number == 2
    assert policy.live_version.number == 1
    item = Item.objects.get(external_id="u")
    decision = services.items_route(item_ids=[item.id], stage=Stage.REROUTE).decisions[0]
    # The live v1 still routes: the unsure item goes to the crowd, as the lenient draft would not.
    assert decision.policy_version.number == 1
    assert decision.outcome == "crowd"
    published = policies.policy_version_rollback(policy=policy, version=draft, author=admin_user, note="reviewed")
    assert published.number == 3 and published.config == draft.config
    assert AuditEvent.objects.filter(action="policy_version.publish_draft").exists()


def test_preview_counts_draft_and_live_on_the_latest_items_without_writing():
    project = make_project()
    ingest(project, [item_row(f"sure-{i}", CONFIDENT) for i in range(4)])
    ingest(project, [item_row(f"unsure-{i}", UNSURE) for i in range(6)])
    decisions = RoutingDecision.objects.count()
    preview = policies.policy_preview(project=project, config=LENIENT)
    assert preview == {
        "draft": {"accept": 10, "crowd": 0, "expert": 0},
        "live": {"accept": 4, "crowd": 6, "expert": 0},
    }
    latest = policies.policy_preview(project=project, config=LENIENT, last_n=5)
    # The five latest items are the unsure ones.
    assert latest["live"] == {"accept": 0, "crowd": 5, "expert": 0}
    assert RoutingDecision.objects.count() == decisions
    assert PolicyVersion.objects.count() == 1


def test_old_decisions_keep_their_version_after_a_publish(admin_user):
    project = make_project()
    ingest(project, [item_row("u", UNSURE)])
    first = RoutingDecision.objects.get()
    policy = policies.policy_for_project(project)
    policies.policy_version_publish(policy=policy, config=LENIENT, author=admin_user, change_note="lenient")
    item = Item.objects.get(external_id="u")
    second = services.items_route(item_ids=[item.id], stage=Stage.REROUTE).decisions[0]
    first.refresh_from_db()
    assert (first.policy_version.number, first.outcome) == (1, "crowd")
    assert (second.policy_version.number, second.outcome) == (2, "accept")
    assert PolicyConfig.from_dict(first.policy_version.config) == DEFAULT_POLICY


def test_a_version_cited_by_decisions_cannot_be_deleted_but_the_project_can():
    project = make_project()
    ingest(project, [item_row("u", UNSURE)])
    version = RoutingDecision.objects.get().policy_version
    with pytest.raises(RestrictedError):
        version.delete()
    project.delete()
    assert not PolicyVersion.objects.exists()
    assert not RoutingDecision.objects.exists()


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, {"crowd_overlap": 2}, [("crowd_overlap", None, 2)]),
        ({"crowd_overlap": 2, "sla_hours": 24.0}, {"crowd_overlap": 3, "sla_hours": 24.0}, [("crowd_overlap", 2, 3)]),
        ({"triggers": []}, {"triggers": [{"signal": "margin"}]}, [("triggers", [], [{"signal": "margin"}])]),
        (
            {"sla_hours": 8.0, "crowd_overlap": 1},
            {"sla_hours": 9.0, "crowd_overlap": 2},
            [("crowd_overlap", 1, 2), ("sla_hours", 8.0, 9.0)],
        ),
        ({"crowd_overlap": 2}, {"crowd_overlap": 2}, []),
    ],
)
def test_config_diff_lists_changed_fields_in_policy_order(before, after, expected):
    assert [(c.field, c.before, c.after) for c in config_diff(before, after)] == expected
