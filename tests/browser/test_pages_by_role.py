"""What each role meets: a stakeholder gets no labeling queue, refusals and unknown addresses are the
workbench's own pages with its navigation (with DEBUG on too, as `make run` serves the demo), disabled
controls look disabled, and the labeling page stays within the Content-Security-Policy through its htmx swaps."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.models import Project
from tests.browser.state import build_workbench, demo_activity
from tests.browser.test_work_errors import csp_violations, expect_layout

pytestmark = pytest.mark.browser

DEBUG_AND_NOT = pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])


@DEBUG_AND_NOT
def test_an_unknown_item_trail_is_the_workbench_404_page(page, live_server, login_as, settings, debug):
    settings.DEBUG = debug
    wb = build_workbench(crowd_texts=("Dark mode?",))
    login_as(wb["stakeholder"])
    response = page.goto(f"{live_server.url}/trail/{wb.project.slug}/no-such-ticket/")
    assert response.status == 404
    expect_layout(page)
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page.locator("main")).to_contain_text("No such item.")
    expect(page.get_by_role("link", name="Items")).to_be_visible()
    assert "URLconf" not in page.content() and "[name=" not in page.content()
    # The item search, where the stakeholder goes next, is one click away and finds the real one.
    page.get_by_role("link", name="Items").click()
    page.fill("#id_q", "crowd-0")
    page.keyboard.press("Enter")
    expect(page.locator("#items tbody tr td a", has_text="crowd-0")).to_be_visible()


@DEBUG_AND_NOT
def test_a_stakeholder_has_no_queue_and_a_refusal_is_the_workbench_403_page(page, live_server, login_as, settings,
                                                                             debug):
    settings.DEBUG = debug
    wb = build_workbench(crowd_texts=("Dark mode?",))
    login_as(wb["stakeholder"])
    # Home sends a stakeholder to the dashboards (not opened here: plotly.js is slow to load on a busy machine).
    home = page.request.get(f"{live_server.url}/", max_redirects=0)
    assert (home.status, home.headers["location"]) == (302, "/dashboards/")
    response = page.goto(f"{live_server.url}/queue/")
    assert response.status == 403
    expect_layout(page)
    expect(page.locator("h1")).to_have_text("Access denied")
    expect(page.locator("main")).to_contain_text("Only active roster members")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Dashboards")).to_be_visible()
    expect(nav.get_by_role("link", name="Items")).to_be_visible()
    expect(nav.get_by_role("link", name="My queue")).to_have_count(0)
    expect(page.locator("#start-labeling")).to_have_count(0)


def test_a_disabled_start_button_looks_disabled(page, live_server, login_as):
    wb = build_workbench()  # nothing to label
    login_as(wb["crowd1"])
    page.goto(f"{live_server.url}/queue/")
    button = page.locator("#start-labeling")
    expect(button).to_be_disabled()
    look = "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.color, s.cursor]; }"
    disabled = button.evaluate(look)
    button.evaluate("b => { b.disabled = false; }")
    enabled = button.evaluate(look)
    assert disabled[0] != enabled[0] and disabled[1] != enabled[1]
    assert disabled[2] == "not-allowed"


def test_no_csp_violation_on_the_labeling_page_through_swaps_errors_and_back(page, live_server, login_as, settings):
    """The demo as `make run` serves it (DEBUG on): an image project (digits) and a table project (biopsy)."""
    settings.DEBUG = True
    people = demo_activity()
    digits = Project.objects.get(slug="handwritten-digits")
    violations = csp_violations(page)
    for username, slug in (("crowd2", digits.slug), ("dr.maria", "biopsy-records"), ("reviewer", "biopsy-records")):
        login_as(people[username])
        page.goto(f"{live_server.url}/projects/{slug}/queue/")
        page.locator("#start-labeling").click()
        page.wait_for_url("**/work/**")
        expect(page.locator("#item-heading")).to_be_focused()
        first = page.locator("#item-heading").inner_text().removeprefix("Review ")
        # An error swapped in: the decline form's reason of spaces.
        page.locator("details.decline summary").click()
        page.locator("#decline-reason").fill("  ")
        page.get_by_role("button", name="Decline item").click()
        expect(page.locator("#decline-reason ~ .field-error")).to_be_visible()
        # A success swapped in: the next item.
        page.locator("#decline-reason").fill("Outside my expertise")
        page.get_by_role("button", name="Decline item").click()
        expect(page.locator("#work-status")).to_have_text(f"Declined {first}.")
        # Back: htmx restores its copy of the previous page.
        page.go_back()
        expect(page.locator("#item-heading")).to_contain_text(first)
        expect_layout(page)
    assert violations == []
