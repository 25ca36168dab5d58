"""The workbench in a real browser (Debian chromium through Playwright) against a live server.

State is built through the services (tests/browser/state.py). `make screenshots` (SCREENSHOTS=1) also
saves the queue, labeling, review and trail pages into docs/screenshots/; without it the same test
still checks those pages.
"""
import os
import pathlib

import pytest
from django.db.models import Count, Q
from playwright.sync_api import expect

from labeling import import_jobs, tasks
from labeling.models import Annotation, ImportJob, Item, JobStatus
from routing import policies
from tests.browser.conftest import login_with_form
from tests.browser.state import ESCALATION_REASON, FACTORS, build_workbench, demo_activity
from work import claims

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
SCREENSHOT_DIR = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def csp_violations(page) -> list[str]:
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text) if "Content Security Policy" in msg.text else None)
    return messages


def start_labeling(page, live_server) -> None:
    page.goto(f"{live_server.url}/queue/")
    page.locator("#start-labeling").click()
    page.wait_for_url("**/work/**")


def test_an_expert_labels_three_items_with_the_keyboard_only(page, live_server):
    wb = build_workbench(expert_texts=("Refund twice charged", "App crashes on save", "Export to CSV please"))
    violations = csp_violations(page)
    login_with_form(page, live_server, "expert")
    assert page.url == f"{live_server.url}/queue/"
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "start-labeling":
            break
    else:
        pytest.fail("Tab never reached the start button")
    page.keyboard.press("Enter")
    page.wait_for_url("**/work/**")

    plan = [("2", "bug", {0}), ("1", "billing", {1, 2}), ("3", "feature", set())]
    labeled = {}
    heading = page.locator("#item-heading")
    for key, label, ticked in plan:
        expect(heading).to_be_focused()
        external_id = heading.inner_text()
        url_before = page.url
        page.keyboard.press(key)
        expect(page.locator(f"input[name=label][value={label}]")).to_be_checked()
        page.keyboard.press("Tab")
        expect(page.locator("#rationale")).to_be_focused()
        # Digits typed into the rationale stay text: hotkeys are off while typing.
        page.keyboard.type(f"Ticket mentions {label} twice, see line 2 and 3")
        expect(page.locator(f"input[name=label][value={label}]")).to_be_checked()
        for index in range(len(FACTORS)):
            page.keyboard.press("Tab")
            if index in ticked:
                page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.press("Space")  # confidence 1 ...
        for _ in range(3):
            page.keyboard.press("ArrowRight")  # ... up to 4
        expect(page.locator("input[name=confidence][value='4']")).to_be_checked()
        page.wait_for_timeout(250)  # some time on the item
        page.keyboard.press("Control+Enter")
        expect(page.locator("#work-status")).to_have_text(f"Saved “{label}” for {external_id}.")
        assert page.url != url_before  # the URL follows the item shown
        labeled[external_id] = (label, {FACTORS[i] for i in ticked})
    expect(page.locator("#done-heading")).to_be_visible()
    assert page.url == f"{live_server.url}/queue/"

    stored = {a.item.external_id: a for a in Annotation.objects.filter(annotator=wb["expert"]).select_related("item")}
    assert stored.keys() == labeled.keys() == {"exp-0", "exp-1", "exp-2"}
    for external_id, (label, factors) in labeled.items():
        a = stored[external_id]
        assert (a.label, set(a.factors), a.confidence, a.role) == (label, factors, 4, "expert")
        assert a.rationale == f"Ticket mentions {label} twice, see line 2 and 3"
        assert 250 <= a.time_spent_ms < 30_000
    assert violations == []


def test_hostile_item_content_shows_as_text_and_never_runs(page, live_server, login_as):
    wb = build_workbench(crowd_texts=(HOSTILE,))
    Item.objects.filter(external_id="crowd-0").update(metadata={"note": HOSTILE, "channel": "web"})
    violations = csp_violations(page)
    login_as(wb["crowd1"])
    start_labeling(page, live_server)
    expect(page.locator("[data-item-text]")).to_have_text(HOSTILE)
    expect(page.get_by_role("cell", name=HOSTILE)).to_be_visible()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("img[src=x]").count() == 0
    assert violations == []


def test_crowd_does_not_see_the_model_suggestion_and_an_expert_does_with_reasons(page, live_server, login_as):
    wb = build_workbench(expert_texts=("Charged twice",), crowd_texts=("Dark mode?",))
    login_as(wb["crowd1"])
    start_labeling(page, live_server)
    expect(page.locator("#item-heading")).to_have_text("crowd-0")
    expect(page.locator("[data-model-suggestion]")).to_have_count(0)
    expect(page.locator("[data-escalation-reasons]")).to_have_count(0)
    expect(page.locator(".choice.suggested")).to_have_count(0)

    login_as(wb["expert"])
    start_labeling(page, live_server)
    expect(page.locator("#item-heading")).to_have_text("exp-0")
    suggestion = page.locator("[data-model-suggestion]")
    expect(suggestion).to_contain_text("billing")
    expect(suggestion.locator("progress")).to_have_count(3)
    expect(page.locator("[data-escalation-reasons]")).to_contain_text(ESCALATION_REASON)
    expect(page.locator(".choice.suggested label")).to_contain_text("billing")


def test_a_crowd_annotator_gets_404_for_someone_elses_item(page, live_server, login_as):
    wb = build_workbench(crowd_texts=("Secret ticket text",))
    theirs = claims.assignment_claim_next(user=wb["crowd1"])
    login_as(wb["crowd2"])
    response = page.goto(f"{live_server.url}/work/{theirs.pk}/")
    assert response.status == 404
    assert "Secret ticket text" not in page.content()


def test_an_import_shows_progress_and_ends_with_the_imported_count(page, live_server, login_as, monkeypatch,
                                                                    settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    queued = []
    # The queue is the job runner's business: record the task, then run it here as the worker would.
    monkeypatch.setattr(import_jobs, "async_task", lambda *args, **kwargs: queued.append(args))
    wb = build_workbench()
    rows = "\n".join(
        f'{{"external_id": "imp-{i}", "data": {{"text": "ticket {i}"}}, "predictions": [{{"model_version": "v1", '
        '"probabilities": {"billing": 0.98, "bug": 0.01, "feature": 0.01}}]}'
        for i in range(25)
    )
    login_as(wb["admin"])
    page.goto(f"{live_server.url}/import/")
    page.select_option("#id_project", label="Support tickets")
    page.set_input_files("#id_file", files=[{"name": "tickets.jsonl", "mimeType": "application/x-ndjson",
                                             "buffer": rows.encode()}])
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url("**/imports/*/")
    expect(page.locator("#progress-heading")).to_have_text("Waiting for a worker…")
    page.evaluate("window.__stayed = true")

    (task, job_id), = queued
    assert task == "labeling.tasks.import_job_run"
    tasks.import_job_run(job_id)

    expect(page.locator("#import-result")).to_have_text("Imported 25 items: 25 new, 0 updated.")
    expect(page.locator("#import-bar")).to_have_attribute("value", "25")
    assert page.evaluate("window.__stayed") is True  # updated in place by polling, not by a reload
    assert ImportJob.objects.get(pk=job_id).status == JobStatus.SUCCEEDED
    assert Item.objects.filter(external_id__startswith="imp-").count() == 25


def test_screenshots_of_queue_labeling_review_and_trail(page, live_server, login_as):
    people = demo_activity()
    violations = csp_violations(page)
    save = os.environ.get("SCREENSHOTS") == "1"

    def snap(name: str, full_page: bool = False) -> None:
        if save:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=full_page)

    login_as(people["dr.ada"])
    page.goto(f"{live_server.url}/queue/")
    expect(page.locator("[data-count=assigned]")).not_to_have_text("0")
    expect(page.locator("table tbody tr").first).to_be_visible()
    snap("queue")

    page.locator("#start-labeling").click()
    page.wait_for_url("**/work/**")
    expect(page.locator("[data-model-suggestion]")).to_be_visible()
    expect(page.locator("[data-escalation-reasons]")).to_be_visible()
    expect(page.locator("table.kv").first).to_be_visible()
    snap("labeling")

    # A crowd annotator's view of the same kind of page: no suggestion, no routing reasons.
    login_as(people["crowd1"])
    page.goto(f"{live_server.url}/projects/handwritten-digits/queue/")
    page.locator("#start-labeling").click()
    page.wait_for_url("**/work/**")
    expect(page.locator(".item-image img")).to_be_visible()
    expect(page.locator("[data-model-suggestion]")).to_have_count(0)
    snap("labeling-crowd")

    login_as(people["reviewer"])
    start_labeling(page, live_server)
    expect(page.locator("#review-form")).to_be_visible()
    expect(page.locator(".annotations-list li").first).to_be_visible()
    snap("review")
    # Picking another label than the current one by its hotkey switches the verdict to "override".
    form = page.locator("#review-form")
    current = form.get_attribute("data-current-label")
    other = form.locator(f"input[data-review-label]:not([value='{current}'])").first
    page.locator("#item-heading").focus()
    page.keyboard.press(other.get_attribute("data-hotkey"))
    expect(other).to_be_checked()
    expect(form.locator("input[name=verdict][value=override]")).to_be_checked()

    # The richest history: crowd labels, an expert label and a review.
    item = (
        Item.objects.annotate(
            crowd=Count("annotations", filter=Q(annotations__role="crowd"), distinct=True),
            expert=Count("annotations", filter=Q(annotations__role="expert"), distinct=True),
            reviewed=Count("reviews", distinct=True),
        )
        .filter(expert__gt=0)
        .order_by("-reviewed", "-crowd", "id")
        .first()
    )
    login_as(people["admin"])
    page.goto(f"{live_server.url}/trail/{item.project.slug}/{item.external_id}/")
    expect(page.locator(".timeline > li.k-decision").first).to_be_visible()
    expect(page.locator(".timeline > li.k-annotation").first).to_be_visible()
    snap("trail", full_page=True)
    assert violations == []


def test_the_login_page_and_the_admin_work_under_the_content_security_policy(page, live_server):
    wb = build_workbench(crowd_texts=(HOSTILE,))
    item = Item.objects.get(external_id="crowd-0")
    violations = csp_violations(page)
    login_with_form(page, live_server, "admin")
    # The admin shows item content too: it stays text there, and nothing inline runs.
    page.goto(f"{live_server.url}/admin/labeling/item/{item.pk}/change/")
    expect(page.locator("#content-main")).to_be_visible()
    assert page.evaluate("typeof window.__xss") == "undefined"
    policy = policies.policy_for_project(wb.project)
    page.goto(f"{live_server.url}/admin/routing/escalationpolicy/{policy.pk}/change/")
    page.locator("input[name=_preview]").click()
    expect(page.locator(".preview-counts")).to_be_visible()
    # The page's own stylesheet (no inline styles) is applied.
    assert page.evaluate("getComputedStyle(document.querySelector('.version-live')).fontWeight") in ("700", "bold")
    assert violations == []
