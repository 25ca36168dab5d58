"""Routing admin: a policy is edited by publishing versions (with preview, diff and rollback); decisions
and versions are read-only; items can be re-routed."""

import dataclasses
import json

import pytest
from django.urls import reverse

from core.models import AuditEvent
from labeling.models import Item
from routing import policies
from routing.admin import PolicyConfigForm
from routing.engine.policy import DEFAULT_POLICY
from routing.engine.types import LATER_FIELDS, PolicyConfig
from routing.models import PolicyVersion, RoutingDecision
from tests.routing.persistence_helpers import CONFIDENT, UNSURE, ingest, item_row, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy():
    project = make_project()
    ingest(
        project,
        [item_row(f"sure-{i}", CONFIDENT) for i in range(3)] + [item_row(f"unsure-{i}", UNSURE) for i in range(2)],
    )
    return policies.policy_for_project(project)


def change_url(policy):
    return reverse("admin:routing_escalationpolicy_change", args=[policy.pk])


def form_data(**changes):
    """The live default policy as the form posts it, with `changes` applied."""
    data = {**PolicyConfigForm.initial_for(DEFAULT_POLICY), **changes}
    posted = {}
    for name, value in data.items():
        if isinstance(value, bool):
            if value:
                posted[name] = "on"
        else:
            posted[name] = value
    return posted


def test_change_page_shows_the_live_fields_and_the_history(admin_client, policy):
    response = admin_client.get(change_url(policy))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="auto_accept_min_top_probability"' in body and 'type="number"' in body
    assert 'value="0.9"' in body
    assert "version-1" in body
    assert "Publish as new version" in body


def test_publishing_through_the_form_adds_a_version_and_shows_the_diff(admin_client, admin_user, policy):
    data = form_data(auto_accept_min_top_probability="0.8", change_note="accept more model labels")
    response = admin_client.post(change_url(policy), {**data, "_publish": "1"})
    assert response.status_code == 302
    policy.refresh_from_db()
    v2 = policy.live_version
    assert v2.number == 2
    assert v2.author == admin_user
    assert v2.config["auto_accept_min_top_probability"] == 0.8
    assert v2.change_note == "accept more model labels"
    assert PolicyVersion.objects.get(policy=policy, number=1).config["auto_accept_min_top_probability"] == 0.9
    assert AuditEvent.objects.filter(action="policy_version.publish", object_id=str(v2.pk)).exists()
    page = admin_client.get(change_url(policy)).content.decode()
    row = page[page.index('id="version-2"') : page.index('id="version-1"')]
    assert "auto_accept_min_top_probability" in row
    assert "<pre>0.9</pre>" in row and "<pre>0.8</pre>" in row
    assert row.count('class="diff-row"') == 1


def test_feature_rules_are_edited_as_json_and_validated_with_clear_errors(admin_client, policy):
    bad_json = form_data(feature_rules="[{", change_note="x")
    response = admin_client.post(change_url(policy), {**bad_json, "_publish": "1"})
    assert response.status_code == 200
    assert "Not valid JSON" in response.content.decode()
    bad_rule = form_data(
        feature_rules=json.dumps([{"field": "data.text", "operator": "longer", "value": 3, "reason_code": "long"}]),
        change_note="x",
    )
    body = admin_client.post(change_url(policy), {**bad_rule, "_publish": "1"}).content.decode()
    assert "rule 1: unknown operator" in body
    missing_key = form_data(triggers=json.dumps([{"signal": "margin", "comparison": "<"}]), change_note="x")
    body = admin_client.post(change_url(policy), {**missing_key, "_publish": "1"}).content.decode()
    assert "trigger 1: missing key" in body
    out_of_range = form_data(consensus_min_agreement="1.5", change_note="x")
    body = admin_client.post(change_url(policy), {**out_of_range, "_publish": "1"}).content.decode()
    assert "consensus_min_agreement is 1.50" in body
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


def test_a_valid_rule_publishes(admin_client, policy):
    rules = [{"field": "data.text", "operator": "len_gt", "value": 3, "reason_code": "long_text", "action": "expert"}]
    data = form_data(feature_rules=json.dumps(rules), change_note="long texts to experts")
    assert admin_client.post(change_url(policy), {**data, "_publish": "1"}).status_code == 302
    policy.refresh_from_db()
    assert policy.live_version.config["feature_rules"] == rules


def test_publish_needs_a_note_and_a_change(admin_client, policy):
    body = admin_client.post(
        change_url(policy), {**form_data(auto_accept_min_margin="0.4"), "_publish": "1"}
    ).content.decode()
    assert "A note saying why is required." in body
    body = admin_client.post(change_url(policy), {**form_data(change_note="same"), "_publish": "1"}).content.decode()
    assert "Nothing changed" in body
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


def test_preview_shows_the_split_and_publishes_nothing(admin_client, policy):
    data = form_data(auto_accept_min_top_probability="0.3", auto_accept_min_margin="0", auto_accept_max_entropy="1")
    response = admin_client.post(change_url(policy), {**data, "_preview": "1"})
    assert response.status_code == 200
    assert response.context["preview"] == {
        "draft": {"accept": 5, "crowd": 0, "expert": 0},
        "live": {"accept": 3, "crowd": 2, "expert": 0},
    }
    assert 'id="preview"' in response.content.decode()
    # The form keeps the previewed values, ready to publish.
    assert response.context["form"]["auto_accept_min_top_probability"].value() == "0.3"
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


def test_save_draft_from_the_form_does_not_go_live(admin_client, policy):
    data = form_data(auto_accept_min_margin="0.4", change_note="try")
    assert admin_client.post(change_url(policy), {**data, "_save_draft": "1"}).status_code == 302
    policy.refresh_from_db()
    assert policy.live_version.number == 1
    assert PolicyVersion.objects.get(policy=policy, number=2).is_draft


def test_rollback_button_publishes_a_copy(admin_client, policy):
    v1 = policy.live_version
    admin_client.post(change_url(policy), {**form_data(auto_accept_min_margin="0.4", change_note="x"), "_publish": "1"})
    response = admin_client.post(change_url(policy), {"_rollback": "1", "version": v1.pk, "note": "back"})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.live_version.number == 3
    assert policy.live_version.config == v1.config
    assert policy.live_version.change_note == "back"


def test_versions_and_decisions_are_read_only(admin_client, policy):
    version = policy.live_version
    assert admin_client.get(reverse("admin:routing_policyversion_change", args=[version.pk])).status_code == 200
    assert (
        admin_client.post(
            reverse("admin:routing_policyversion_change", args=[version.pk]), {"change_note": "x"}
        ).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:routing_policyversion_add")).status_code == 403
    decision = RoutingDecision.objects.first()
    assert admin_client.get(reverse("admin:routing_routingdecision_change", args=[decision.pk])).status_code == 200
    assert admin_client.get(reverse("admin:routing_routingdecision_delete", args=[decision.pk])).status_code == 403
    changelist = reverse("admin:routing_routingdecision_changelist")
    response = admin_client.get(changelist, {"outcome": "crowd", "stage": "ingest", "policy_version": version.pk})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 2


def test_reroute_action_writes_decisions_and_audit_events(admin_client, admin_user, policy):
    items = list(Item.objects.filter(external_id__startswith="unsure").values_list("id", flat=True))
    response = admin_client.post(
        reverse("admin:routing_routeditem_changelist"), {"action": "reroute", "_selected_action": items}
    )
    assert response.status_code == 302
    assert RoutingDecision.objects.filter(stage="reroute", item_id__in=items, actor=admin_user).count() == 2
    assert AuditEvent.objects.filter(action="item.reroute", actor=admin_user).count() == 2


def test_routed_item_page_shows_the_trail(admin_client, policy):
    item = Item.objects.get(external_id="sure-0")
    body = admin_client.get(reverse("admin:routing_routeditem_change", args=[item.pk])).content.decode()
    assert "ingest · v1</a> → accept cat" in body


def test_changelists_render(admin_client, policy):
    for name in ("escalationpolicy", "policyversion", "routingdecision", "routeditem"):
        assert admin_client.get(reverse(f"admin:routing_{name}_changelist")).status_code == 200


def test_adding_a_policy_creates_version_one_through_the_service(admin_client):
    project = make_project("fresh")
    response = admin_client.post(reverse("admin:routing_escalationpolicy_add"), {"project": project.pk})
    assert response.status_code == 302
    policy = project.escalation_policy
    assert policy.live_version.number == 1
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


def test_staff_without_permissions_cannot_open_or_post_the_policy_page(client, policy, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(change_url(policy)).status_code == 403
    data = form_data(auto_accept_min_margin="0.4", change_note="x")
    assert client.post(change_url(policy), {**data, "_publish": "1"}).status_code == 403
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


def test_override_action_asks_for_label_and_reason_then_audits(admin_client, admin_user, policy):
    items = list(Item.objects.filter(external_id__startswith="unsure").values_list("id", flat=True))
    changelist = reverse("admin:routing_routeditem_changelist")
    page = admin_client.post(changelist, {"action": "override_final_label", "_selected_action": items})
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode()
    missing_reason = {"action": "override_final_label", "_selected_action": items, "apply": "1", "label": "dog"}
    assert admin_client.post(changelist, missing_reason).status_code == 200
    assert not AuditEvent.objects.filter(action="item.final_label_override").exists()
    response = admin_client.post(changelist, {**missing_reason, "reason": "vet confirmed"})
    assert response.status_code == 302
    assert set(Item.objects.filter(id__in=items).values_list("final_label", "final_source")) == {("dog", "expert")}
    assert AuditEvent.objects.filter(action="item.final_label_override", actor=admin_user).count() == 2


def test_the_form_starts_from_every_field_of_a_version_that_predates_later_fields(admin_client, policy):
    # A version stored before class_prior_weight & co. existed omits them; the form must still show
    # their legacy values, or an unchanged preview fails with "This field is required".
    legacy = PolicyConfig()
    initial = PolicyConfigForm.initial_for(legacy)
    assert set(initial) == {f.name for f in dataclasses.fields(PolicyConfig)}
    policies.policy_version_publish(policy=policy, config=legacy, author=None, change_note="legacy fields")
    page = admin_client.get(change_url(policy)).content.decode()
    assert 'name="class_prior_weight" value="0.0"' in page
    posted = {k: v for k, v in form_data().items() if k not in LATER_FIELDS}
    posted.update({k: ("on" if v is True else v) for k, v in initial.items() if k in LATER_FIELDS and v is not False})
    response = admin_client.post(change_url(policy), {**posted, "_preview": "1"})
    assert 'class="preview-counts"' in response.content.decode()


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.parametrize("count, message", [(1, "Re-routed 1 item: "), (2, "Re-routed 2 items: ")])
def test_action_messages_count_in_the_right_number(admin_client, policy, count, message):
    items = list(Item.objects.filter(external_id__startswith="unsure").values_list("id", flat=True))[:count]
    changelist = reverse("admin:routing_routeditem_changelist")
    response = admin_client.post(changelist, {"action": "reroute", "_selected_action": items}, follow=True)
    assert any(m.startswith(message) for m in _messages(response)), _messages(response)
    response = admin_client.post(
        changelist,
        {"action": "override_final_label", "_selected_action": items, "apply": "1", "label": "dog", "reason": "vet"},
        follow=True,
    )
    noun = "item" if count == 1 else "items"
    assert f"Set the final label of {count} {noun} to 'dog'." in _messages(response)


def test_version_list_says_draft_live_or_retired_in_words(admin_client, policy):
    for margin, button in (("0.4", "_publish"), ("0.3", "_save_draft")):
        data = form_data(auto_accept_min_margin=margin, change_note="x")
        admin_client.post(change_url(policy), {**data, button: "1"})
    response = admin_client.get(reverse("admin:routing_policyversion_changelist"))
    body = response.content.decode()
    assert "icon-no.svg" not in body and "icon-yes.svg" not in body
    statuses = {v.number: response.context["cl"].model_admin.status(v) for v in response.context["cl"].result_list}
    assert statuses == {1: "retired", 2: "live", 3: "draft"}
    assert all(f'<td class="field-status">{s}</td>' in body for s in ("retired", "live", "draft"))
    history = admin_client.get(change_url(policy)).content.decode()
    assert "(retired)" in history and "(live)" in history and "(draft)" in history


def test_lists_show_confidences_rounded(admin_client, policy):
    decisions = RoutingDecision.objects.exclude(confidence=None)
    RoutingDecision.objects.filter(pk=decisions.first().pk).update(confidence=0.875182990433)
    Item.objects.filter(external_id="sure-0").update(final_confidence=0.8333333333333334)
    body = admin_client.get(reverse("admin:routing_routingdecision_changelist")).content.decode()
    assert "0.875182990433" not in body and ">0.875<" in body
    body = admin_client.get(reverse("admin:routing_routeditem_changelist")).content.decode()
    assert "0.8333333333333334" not in body and ">0.833<" in body


def test_the_version_history_rounds_changed_numbers(admin_client, policy):
    data = form_data(auto_accept_min_margin="0.875182990433", change_note="calibrated")
    assert admin_client.post(change_url(policy), {**data, "_publish": "1"}).status_code == 302
    history = admin_client.get(change_url(policy)).content.decode().split('id="history"')[1]
    assert "<pre>0.875</pre>" in history and "0.875182990433" not in history


def test_the_history_shows_whole_numbers_when_rounding_would_hide_the_change(admin_client, policy):
    live = policy.live_version.config.get("auto_accept_min_margin", DEFAULT_POLICY.auto_accept_min_margin)
    nudged = round(live + 1e-6, 9)
    data = form_data(auto_accept_min_margin=str(nudged), change_note="nudged")
    assert admin_client.post(change_url(policy), {**data, "_publish": "1"}).status_code == 302
    history = admin_client.get(change_url(policy)).content.decode().split('id="history"')[1]
    assert f"<pre>{nudged}</pre>" in history and f"<pre>{live}</pre>" in history
