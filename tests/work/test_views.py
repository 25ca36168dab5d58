"""The workbench pages of routing: queue, labeling and review panels, decline, item trail, home."""
import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Annotation, GoldLabel, Item, Review
from labeling.services import items_ingest
from routing import policies
from routing.engine.types import PolicyConfig
from routing.models import Assignment, AssignmentKind, AssignmentStatus
from tests.browser.state import ESCALATION_REASON, build_workbench
from work import claims, submissions

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture
def wb():
    return build_workbench(
        expert_texts=(HOSTILE, "Refund twice charged", "App crashes on save"),
        crowd_texts=("Please add dark mode", "Invoice missing", "Login fails"),
    )


def login(client, user):
    client.force_login(user)
    return client


def start(client, scope=""):
    response = client.post(reverse("work:queue_start"), {"scope": scope})
    assert response.status_code == 302
    match = re.match(r"^/work/(\d+)/", response["Location"])
    assert match, response["Location"]
    return Assignment.objects.get(pk=int(match.group(1))), response["Location"]


def test_queue_counts_and_start_labeling_claims_and_opens_the_next_item(client, wb):
    login(client, wb["expert"])
    page = client.get(reverse("work:queue"))
    assert page.status_code == 200
    assert re.search(r'data-count="open_for_you">3<', page.content.decode())
    assignment, location = start(client)
    assert assignment.assignee == wb["expert"] and assignment.status == AssignmentStatus.ACTIVE
    # An overdue held item is counted as assigned and overdue.
    Assignment.objects.filter(pk=assignment.pk).update(due_at=timezone.now() - dt.timedelta(hours=1))
    body = client.get(reverse("work:project_queue", args=["tickets"])).content.decode()
    assert re.search(r'data-count="assigned">1<', body) and re.search(r'data-count="overdue">1<', body)
    # Starting again reopens the held item instead of claiming another.
    again, _ = start(client, "tickets")
    assert again.pk == assignment.pk


def test_labeling_page_renders_hostile_text_inert_with_a_strict_csp(client, wb):
    login(client, wb["expert"])
    assignment, location = start(client)
    assert assignment.item.external_id == "exp-0"
    response = client.get(location)
    body = response.content.decode()
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;&lt;script&gt;" in body
    assert "<script>window.__xss" not in body and "<img src=x" not in body
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # No inline script anywhere: every <script> has a src.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", body))


def test_someone_elses_assignment_answers_404(client, wb):
    login(client, wb["crowd1"])
    mine, _ = start(client)
    login(client, wb["crowd2"])
    assert client.get(reverse("work:work", args=[mine.pk])).status_code == 404
    response = client.post(reverse("work:submit", args=[mine.pk]), {"label": "bug"})
    assert response.status_code == 404
    assert client.get(reverse("work:work", args=[999_999])).status_code == 404
    assert not Annotation.objects.exists()


def test_crowd_sees_no_suggestion_nor_hidden_fields_and_experts_see_both(client, wb):
    login(client, wb["crowd1"])
    _, location = start(client)
    crowd_page = client.get(location).content.decode()
    # \b: the page's random alphanumeric CSRF token may contain "v3", but never as a word of its own.
    assert "data-model-suggestion" not in crowd_page and "ticket-clf" not in crowd_page
    assert not re.search(r"\bv3\b", crowd_page)
    assert ESCALATION_REASON not in crowd_page
    assert "customer.example" not in crowd_page and "1 field hidden from this view" in crowd_page
    assert 'required' not in re.search(r'<textarea id="rationale"[^>]*>', crowd_page).group(0)

    login(client, wb["expert"])
    _, location = start(client)
    expert_page = client.get(location).content.decode()
    assert "data-model-suggestion" in expert_page and "billing" in expert_page and "45%" in expert_page
    assert ESCALATION_REASON in expert_page
    assert "exp-0@customer.example" in expert_page
    assert 'required' in re.search(r'<textarea id="rationale"[^>]*>', expert_page).group(0)


def test_field_visibility_decides_per_role_which_fields_the_page_shows(client, wb):
    # Shown to reviewers alone: the expert's page no longer has it, a crowd-visible field stays for all.
    wb.project.field_visibility = {"metadata.customer_email": ["reviewer"]}
    wb.project.save()
    login(client, wb["expert"])
    _, location = start(client)
    expert_page = client.get(location).content.decode()
    assert "customer.example" not in expert_page and "1 field hidden from this view" in expert_page
    wb.project.field_visibility = {}
    wb.project.save()
    login(client, wb["crowd1"])
    _, location = start(client)
    assert "customer.example" in client.get(location).content.decode()


def test_crowd_sees_the_suggestion_when_the_project_allows_it(client, wb):
    wb.project.show_suggestion_to_crowd = True
    wb.project.save()
    login(client, wb["crowd1"])
    _, location = start(client)
    page = client.get(location).content.decode()
    assert "data-model-suggestion" in page and ESCALATION_REASON not in page


def test_htmx_submit_stores_the_label_and_swaps_in_the_next_item(client, wb):
    login(client, wb["expert"])
    first, _ = start(client)
    page = client.get(reverse("work:work", args=[first.pk])).content.decode()
    started = re.search(r'name="started" value="([^"]+)"', page).group(1)
    response = client.post(
        reverse("work:submit", args=[first.pk]),
        {"label": "bug", "rationale": "Stack trace in the text", "factors": ["jargon"], "confidence": "4",
         "unsure": "on", "started": started, "time_spent_ms": str(10 * 60 * 1000), "scope": "tickets"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    annotation = Annotation.objects.get(annotator=wb["expert"])
    assert (annotation.label, annotation.rationale, annotation.factors, annotation.confidence, annotation.unsure) == (
        "bug", "Stack trace in the text", ["jargon"], 4, True)
    # The browser claimed ten minutes; the server saw the page rendered moments ago.
    assert annotation.time_spent_ms is not None and annotation.time_spent_ms < 60_000
    following = Assignment.objects.get(assignee=wb["expert"], status=AssignmentStatus.ACTIVE)
    assert response["HX-Push-Url"] == reverse("work:work", args=[following.pk]) + "?scope=tickets"
    body = response.content.decode()
    assert "<html" not in body and 'id="work-panel"' in body and following.item.external_id in body
    assert 'hx-swap-oob="true"' in body and "Saved “bug” for exp-0." in body


def test_plain_form_submit_redirects_to_the_next_item(client, wb):
    login(client, wb["crowd1"])
    first, location = start(client)
    started = re.search(r'name="started" value="([^"]+)"', client.get(location).content.decode()).group(1)
    response = client.post(reverse("work:submit", args=[first.pk]), {"label": "feature", "started": started})
    following = Assignment.objects.get(assignee=wb["crowd1"], status=AssignmentStatus.ACTIVE)
    assert response.status_code == 302 and response["Location"] == reverse("work:work", args=[following.pk])
    # Without a browser timer (no JavaScript) the server's own measure since it rendered the page is stored.
    annotation = Annotation.objects.get(annotator=wb["crowd1"])
    assert annotation.time_spent_ms is not None and 0 <= annotation.time_spent_ms < 60_000
    assert annotation.started_at <= annotation.submitted_at


def test_a_forged_start_is_ignored(client, wb):
    login(client, wb["crowd1"])
    first, _ = start(client)
    client.post(reverse("work:submit", args=[first.pk]),
                {"label": "feature", "started": "forged:token", "time_spent_ms": "5000"})
    # The service still bounds the browser's figure by the time since the claim (a few ms ago, plus slack).
    assert Annotation.objects.get(annotator=wb["crowd1"]).time_spent_ms == 5000


def test_invalid_submit_shows_the_errors_keeps_the_input_and_stores_nothing(client, wb):
    login(client, wb["expert"])
    first, _ = start(client)
    response = client.post(
        reverse("work:submit", args=[first.pk]), {"label": "bug", "rationale": " ", "factors": ["jargon"]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A rationale is required" in body
    assert re.search(r'value="bug"[^>]*checked', body) and re.search(r'value="jargon" checked', body)
    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=first.pk).status == AssignmentStatus.ACTIVE


def test_submit_on_an_expired_lease_is_a_conflict(client, wb):
    login(client, wb["crowd1"])
    first, _ = start(client)
    Assignment.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = client.post(reverse("work:submit", args=[first.pk]), {"label": "bug"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409 and "expired" in response.content.decode()
    assert not Annotation.objects.exists()


def test_decline_needs_a_reason_then_moves_on(client, wb):
    login(client, wb["expert"])
    first, _ = start(client)
    refused = client.post(reverse("work:decline", args=[first.pk]), {"reason": ""}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 400 and "Say why you decline" in refused.content.decode()
    response = client.post(
        reverse("work:decline", args=[first.pk]), {"reason": "Outside my expertise"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    first.refresh_from_db()
    assert first.status == AssignmentStatus.DECLINED and first.decline_reason == "Outside my expertise"
    assert "Declined exp-0." in response.content.decode()


def test_the_last_item_leads_to_the_queue_done_panel(client, wb):
    login(client, wb["expert"])
    for _ in range(3):
        held = claims.assignment_claim_next(user=wb["expert"])
        submissions.assignment_submit(assignment_id=held.pk, user=wb["expert"], label="bug", rationale="r")
    done_before = Annotation.objects.count()
    login(client, wb["crowd1"])
    last, _ = start(client)
    Assignment.objects.filter(assignee__isnull=True, kind=AssignmentKind.CROWD).update(
        status=AssignmentStatus.CANCELLED)
    response = client.post(reverse("work:submit", args=[last.pk]), {"label": "bug"}, HTTP_HX_REQUEST="true")
    assert Annotation.objects.count() == done_before + 1
    assert "Your queue is done" in response.content.decode()
    assert response["HX-Push-Url"] == reverse("work:queue")


def test_review_agree_and_override(client, wb):
    for _ in range(2):
        held = claims.assignment_claim_next(user=wb["expert"])
        submissions.assignment_submit(assignment_id=held.pk, user=wb["expert"], label="bug", rationale="trace")
    login(client, wb["reviewer"])
    first, location = start(client)
    assert first.kind == AssignmentKind.REVIEW
    page = client.get(location).content.decode()
    assert 'data-current-label="bug"' in page and "trace" in page and "Submit review" in page
    response = client.post(reverse("work:review", args=[first.pk]), {"verdict": "agree", "label": "bug"},
                           HTTP_HX_REQUEST="true")
    second = Assignment.objects.get(assignee=wb["reviewer"], status=AssignmentStatus.ACTIVE)
    assert response.status_code == 200 and response["HX-Push-Url"].startswith(reverse("work:work", args=[second.pk]))
    missing_reason = client.post(reverse("work:review", args=[second.pk]), {"verdict": "override", "label": "billing"},
                                 HTTP_HX_REQUEST="true")
    assert missing_reason.status_code == 400 and "Say why the label is wrong" in missing_reason.content.decode()
    client.post(reverse("work:review", args=[second.pk]),
                {"verdict": "override", "label": "billing", "reason": "Asks for a refund"}, HTTP_HX_REQUEST="true")
    reviews = list(Review.objects.order_by("created_at").values_list("verdict", "previous_label", "label", "reason"))
    assert reviews == [("agree", "bug", "bug", ""), ("override", "bug", "billing", "Asks for a refund")]
    second.item.refresh_from_db()
    assert second.item.final_label == "billing"


def test_a_gold_check_looks_like_any_crowd_item(client):
    wb = build_workbench(crowd_texts=("First", "Second"), gold_check_rate=1.0)
    item = wb.project.items.get(external_id="crowd-1")
    GoldLabel.objects.create(item=item, label="bug")
    login(client, wb["crowd1"])
    gold, location = start(client)
    assert gold.kind == AssignmentKind.GOLD_CHECK
    gold_page = client.get(location).content.decode()
    assert "gold" not in gold_page.lower()
    login(client, wb["crowd2"])
    policies.policy_version_publish(
        policy=policies.policy_for_project(wb.project),
        config=PolicyConfig.from_dict({
            **policies.policy_for_project(wb.project).live_version.config, "gold_check_rate": 0.0}),
        author=wb["admin"], change_note="no gold",
    )
    plain, plain_location = start(client)
    assert plain.kind == AssignmentKind.CROWD
    plain_page = client.get(plain_location).content.decode()

    def shape(html):
        # Ids, names and data-* attributes: the page's structure without its content.
        return sorted(set(re.findall(r'\b(?:id|name|data-[\w-]+)(?:="[^"]*")?', html)) - {
            f'id="label-{i}"' for i in range(1, 4)})

    strip = re.compile(r'(/work/\d+/|value="[^"]*"|\d+)')
    assert strip.sub("", " ".join(shape(gold_page))) == strip.sub("", " ".join(shape(plain_page)))


class TestTrail:
    def test_admin_sees_every_step_of_an_item(self, client, wb):
        held = claims.assignment_claim_next(user=wb["expert"])
        submissions.assignment_submit(assignment_id=held.pk, user=wb["expert"], label="bug", rationale="Trace in text",
                                   factors=["jargon"], confidence=5, time_spent_ms=1200)
        review = claims.assignment_claim_next(user=wb["reviewer"])
        submissions.review_submit(assignment_id=review.pk, user=wb["reviewer"], verdict="override", label="billing",
                               reason="Refund request")
        login(client, wb["admin"])
        item = Item.objects.get(pk=held.item_id)
        response = client.get(reverse("routing:trail", args=[wb.project.slug, item.external_id]))
        assert response.status_code == 200
        body = response.content.decode()
        for expected in ("Ingested", "Prediction by ticket-clf v3", "Routing decision: expert", "policy version",
                         ESCALATION_REASON, "Expert label assignment: Expert", "Labeled bug", "Trace in text",
                         "1.2 s", "Review: overrode bug with billing", "Refund request", "Final label billing",
                         "Audit: item.final_label_override", "exp-0@customer.example"):
            assert expected in body, expected
        # One timeline in the order things happened.
        steps = ["Ingested", "Routing decision: expert", "Expert label assignment: Expert", "Labeled bug",
                 "Routing decision: accept", "Review assignment: Reviewer", "Review: overrode bug with billing",
                 "Final label billing"]
        positions = [body.index(step) for step in steps]
        assert positions == sorted(positions)
        # Escaped like everywhere else.
        assert "&lt;script&gt;" in body and "<script>window" not in body

    def test_the_routed_item_admin_links_to_the_trail(self, client, wb):
        item = wb.project.items.get(external_id="crowd-0")
        login(client, wb["admin"])
        body = client.get(reverse("admin:routing_routeditem_change", args=[item.pk])).content.decode()
        assert f'href="{reverse("routing:trail", args=[wb.project.slug, item.external_id])}"' in body

    def test_stakeholders_read_trails_without_hidden_fields_and_annotators_cannot(self, client, wb):
        item = wb.project.items.get(external_id="crowd-0")
        login(client, wb["stakeholder"])
        body = client.get(reverse("routing:trail", args=[wb.project.slug, item.external_id])).content.decode()
        assert "Please add dark mode" in body and "customer.example" not in body
        for username in ("crowd1", "expert"):
            login(client, wb[username])
            assert client.get(reverse("routing:trail", args=[wb.project.slug, item.external_id])).status_code == 403
            assert client.get(reverse("routing:item_trail", args=[item.pk])).status_code == 403

    def test_the_first_address_by_internal_id_redirects_to_the_one_by_project_and_external_id(self, client, wb):
        item = wb.project.items.get(external_id="crowd-0")
        login(client, wb["stakeholder"])
        response = client.get(reverse("routing:item_trail", args=[item.pk]))
        assert response.status_code == 302
        assert response["Location"] == f"/trail/{wb.project.slug}/crowd-0/"

    def test_external_ids_with_slashes_and_spaces_have_a_trail(self, client, wb):
        ingested = items_ingest(project=wb.project, rows=[{"external_id": "batch 7/scan #2", "data": {"text": "x"}}])
        login(client, wb["stakeholder"])
        url = reverse("routing:trail", args=[wb.project.slug, "batch 7/scan #2"])
        assert url == f"/trail/{wb.project.slug}/batch%207/scan%20%232/"
        response = client.get(url)
        assert response.status_code == 200 and response.context["item"].pk == ingested.item_ids[0]

    @pytest.mark.parametrize("path",
        ["/trail/{slug}/no-such-item/", "/trail/no-such-project/crowd-0/", "/items/999999/trail/"])
    def test_an_unknown_item_gets_the_styled_404_page(self, client, wb, path):
        login(client, wb["stakeholder"])
        response = client.get(path.format(slug=wb.project.slug))
        body = response.content.decode()
        assert response.status_code == 404
        assert "Page not found" in body and 'class="topbar"' in body and "URLconf" not in body


class TestHome:
    def test_annotators_land_on_their_queue(self, client, wb):
        login(client, wb["crowd1"])
        assert client.get(reverse("home"))["Location"] == reverse("work:queue")

    def test_admins_get_admin_links(self, client, wb):
        login(client, wb["admin"])
        body = client.get(reverse("home")).content.decode()
        assert reverse("admin:index") in body and reverse("labeling:import") in body

    def test_stakeholders_land_on_the_dashboards_when_they_exist(self, client, wb):
        login(client, wb["stakeholder"])
        response = client.get(reverse("home"))
        try:
            dashboards = reverse("dashboards:index")
        except Exception:
            assert response.status_code == 200 and "Dashboards" in response.content.decode()
        else:
            assert response["Location"] == dashboards
