"""The labeling, decline and review forms when the server refuses or fails: a 400 re-renders the form in place
(the layout stays, what was typed stays, the message sits by its field, the keyboard flow goes on); any other
error (403, 404, 500) leaves the form as it was and says so in the page. With DEBUG on, as `make run` serves
the demo, and off, as in production; never a Content-Security-Policy violation."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Annotation
from routing.models import Assignment
from tests.browser.state import build_workbench
from work import claims, submissions

pytestmark = pytest.mark.browser

DEBUG_AND_NOT = pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])


def csp_violations(page) -> list[str]:
    """Every Content-Security-Policy violation, from the console and the securitypolicyviolation event."""
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy: ' + e.violatedDirective + ' ' + e.sourceFile))")
    return found


def open_next(page, live_server) -> None:
    page.goto(f"{live_server.url}/queue/")
    page.locator("#start-labeling").click()
    page.wait_for_url("**/work/**")
    expect(page.locator("#item-heading")).to_be_focused()


def expect_layout(page) -> None:
    """The page is still the workbench: header, navigation and stylesheet applied."""
    expect(page.locator("header.topbar nav")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('header.topbar')).display") == "flex"


def reviewer_with_work() -> tuple:
    wb = build_workbench(expert_texts=("Refund twice charged",), review_sample_rate=1.0)
    assignment = claims.assignment_claim_next(user=wb["expert"])
    submissions.assignment_submit(assignment_id=assignment.pk, user=wb["expert"], label="billing",
                                  rationale="Charged twice on the invoice.")
    return wb


@DEBUG_AND_NOT
def test_a_review_override_without_a_reason_is_answered_by_the_reason_box(page, live_server, login_as, settings,
                                                                           debug):
    settings.DEBUG = debug
    wb = reviewer_with_work()
    violations = csp_violations(page)
    login_as(wb["reviewer"])
    open_next(page, live_server)
    url = page.url
    form = page.locator("#review-form")
    page.keyboard.press("2")  # "bug": not the current label, so an override
    expect(form.locator("input[name=verdict][value=override]")).to_be_checked()
    page.keyboard.press("Control+Enter")

    reason = page.locator("#review-reason")
    expect(page.locator("#review-reason ~ .field-error")).to_have_text("Say why the label is wrong.")
    expect_layout(page)
    assert page.url == url
    expect(form.locator("input[name=label][value=bug]")).to_be_checked()
    expect(form.locator("input[name=verdict][value=override]")).to_be_checked()
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(reason).to_be_focused()  # the keyboard goes on where the answer is missing
    page.keyboard.type("The customer reports a crash, not a charge.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#work-status")).to_have_text("Overrode with “bug” on exp-0.")
    expect_layout(page)
    assert violations == []


@DEBUG_AND_NOT
def test_an_expert_rationale_of_spaces_is_refused_in_place_and_the_item_then_saves(page, live_server, login_as,
                                                                                  settings, debug):
    settings.DEBUG = debug
    wb = build_workbench(expert_texts=("Refund twice charged", "App crashes on save"))
    violations = csp_violations(page)
    login_as(wb["expert"])
    open_next(page, live_server)
    page.keyboard.press("1")
    page.keyboard.press("Tab")
    page.keyboard.type("   ")
    page.locator("input[name=factors][value=sarcasm]").check()
    page.wait_for_timeout(700)  # time on the item before the refusal, still counted after it
    page.keyboard.press("Control+Enter")

    rationale = page.locator("#rationale")
    expect(page.locator("#rationale ~ .field-error")).to_contain_text("A rationale is required")
    expect_layout(page)
    expect(page.locator("input[name=label][value=billing]")).to_be_checked()
    expect(page.locator("input[name=factors][value=sarcasm]")).to_be_checked()
    expect(rationale).to_be_focused()
    page.keyboard.type("Two charges on one invoice.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#work-status")).to_have_text("Saved “billing” for exp-0.")
    expect(page.locator("#item-heading")).to_have_text("exp-1")
    expect(page.locator(".field-error")).to_have_count(0)
    saved = Annotation.objects.get(annotator=wb["expert"], item__external_id="exp-0")
    assert (saved.rationale, saved.factors) == ("Two charges on one invoice.", ["sarcasm"])
    assert saved.time_spent_ms >= 700
    assert violations == []


@DEBUG_AND_NOT
def test_a_decline_without_a_reason_is_answered_by_its_reason_box(page, live_server, login_as, settings, debug):
    settings.DEBUG = debug
    wb = build_workbench(crowd_texts=("Dark mode?",))
    violations = csp_violations(page)
    login_as(wb["crowd1"])
    open_next(page, live_server)
    page.locator("details.decline summary").click()
    page.locator("#decline-reason").fill("   ")
    page.get_by_role("button", name="Decline item").click()

    expect(page.locator("#decline-reason ~ .field-error")).to_have_text(
        "Say why you decline (e.g. outside my expertise).")
    expect_layout(page)
    expect(page.locator("details.decline")).to_have_attribute("open", "")
    expect(page.locator("#decline-reason")).to_be_focused()
    page.keyboard.type("Outside my expertise")
    page.keyboard.press("Control+Enter")  # the decline it is in, not the label form
    expect(page.locator("#work-status")).to_have_text("Declined crowd-0.")
    assert violations == []


@DEBUG_AND_NOT
def test_a_server_error_keeps_the_form_and_says_so_in_the_page(page, live_server, login_as, settings, monkeypatch,
                                                               debug):
    settings.DEBUG = debug
    wb = build_workbench(expert_texts=("Refund twice charged",))

    def fail(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(submissions, "assignment_submit", fail)
    violations = csp_violations(page)
    login_as(wb["expert"])
    open_next(page, live_server)
    page.keyboard.press("3")
    page.locator("#rationale").fill("Asks for an export.")
    page.keyboard.press("Control+Enter")

    alert = page.locator("#label-form [data-request-error]")
    expect(alert).to_contain_text("failed")
    expect(alert).to_have_attribute("role", "alert")
    expect_layout(page)
    expect(page.locator("#rationale")).to_have_value("Asks for an export.")
    expect(page.locator("input[name=label][value=feature]")).to_be_checked()

    monkeypatch.undo()
    page.keyboard.press("Control+Enter")  # again, once the server is back
    expect(page.locator("#work-status")).to_have_text("Saved “feature” for exp-0.")
    expect(page.locator("[data-request-error]")).to_have_count(0)
    assert violations == []


def test_refusals_during_an_htmx_submit_show_their_reason_in_the_page(page, live_server, login_as):
    wb = build_workbench(expert_texts=("Refund twice charged",))
    violations = csp_violations(page)
    login_as(wb["expert"])
    open_next(page, live_server)
    page.keyboard.press("1")
    page.locator("#rationale").fill("Charged twice.")
    # The security token's cookie is gone (another tab logged out and in): a 403 that says what to do.
    page.context.clear_cookies(name="csrftoken")
    page.keyboard.press("Control+Enter")
    alert = page.locator("#label-form [data-request-error]")
    expect(alert).to_contain_text("Reload the page and try again")
    expect(page.locator("#rationale")).to_have_value("Charged twice.")

    # The item was taken away meanwhile (re-routed, lease expired): the 404's own sentence.
    page.reload()
    page.keyboard.press("1")
    page.locator("#rationale").fill("Charged twice.")
    Assignment.objects.filter(assignee=wb["expert"]).update(assignee=wb["crowd1"])
    page.keyboard.press("Control+Enter")
    expect(alert).to_contain_text("No such item in your queue.")
    expect_layout(page)
    assert violations == []
