"""The stakeholder dashboard in a real browser: every chart drawn by plotly.js, filters swapped in by htmx,
no Content-Security-Policy violation. `make screenshots` (SCREENSHOTS=1) also saves
docs/screenshots/dashboard.png.
"""
from __future__ import annotations

import os
import pathlib

import pytest
from playwright.sync_api import expect

from dashboards.services import snapshots_refresh
from tests.browser.state import demo_activity

pytestmark = pytest.mark.browser

SCREENSHOT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "dashboard.png"
PROJECT = "biopsy-records"


def console_problems(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def expect_every_chart_drawn(page) -> int:
    charts = page.locator("[data-figure]")
    count = charts.count()
    for i in range(count):
        expect(charts.nth(i).locator(".main-svg").first).to_be_attached()
    return count


def test_every_chart_is_drawn_and_filters_redraw_them(page, live_server, login_as):
    people = demo_activity()
    snapshots_refresh()
    problems = console_problems(page)
    login_as(people["stakeholder"])

    page.goto(f"{live_server.url}/dashboards/{PROJECT}/")
    expect(page.locator("h1")).to_have_text("Biopsy records")
    assert expect_every_chart_drawn(page) >= 20
    # Stakeholders see people numbered, never named.
    expect(page.locator("#table-effort tbody tr").first).to_contain_text("Annotator")

    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1366, "height": 1500})
        page.locator("#report-gold_accuracy").scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT))

    # A filter re-requests the panels through htmx; the new charts are drawn too and the URL follows.
    page.select_option("#id_route", "crowd")
    page.wait_for_url("**route=crowd**")
    expect(page.locator("#report-gold_accuracy [data-figure]").first.locator(".main-svg").first).to_be_attached()
    expect_every_chart_drawn(page)
    gold_routes = page.locator("#table-gold_by_route tbody tr td:first-child")
    expect(gold_routes).to_have_text(["crowd"])

    assert problems == []


def csp_violations(page) -> list[str]:
    """Every Content-Security-Policy violation the page reports, from the console and from the
    securitypolicyviolation event (listened for before any script of the page runs)."""
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy: ' + e.violatedDirective + ' ' + e.sourceFile"
                         " + ' ' + (e.target.outerHTML || '').slice(0, 150)))")
    return found


def test_no_csp_violation_on_the_dashboards_through_swaps_and_the_back_button(page, live_server, login_as):
    people = demo_activity()
    snapshots_refresh()
    violations = csp_violations(page)
    login_as(people["stakeholder"])
    for path in ("/dashboards/", f"/dashboards/{PROJECT}/"):
        page.goto(f"{live_server.url}{path}")
        expect_every_chart_drawn(page)
        page.locator("[data-figure]").first.hover()
        page.select_option("#id_route", "crowd")
        page.wait_for_url("**route=crowd**")
        expect_every_chart_drawn(page)
        # Back: htmx puts its copy of the panels back; the charts are drawn again, with no inline style.
        page.go_back()
        page.wait_for_url(f"{live_server.url}{path}")
        expect(page.locator("#id_route")).to_have_value("")
        expect_every_chart_drawn(page)
    assert violations == []


def test_a_stakeholder_goes_from_a_chart_point_to_the_items_and_finds_one_by_external_id(page, live_server, login_as):
    people = demo_activity()
    snapshots_refresh()
    login_as(people["stakeholder"])
    page.goto(f"{live_server.url}/dashboards/{PROJECT}/")
    # A point of "Items by status" opens the items with that status.
    chart = page.locator("#chart-status_counts [data-figure]")
    expect(chart.locator(".main-svg").first).to_be_attached()
    chart.scroll_into_view_if_needed()
    box = chart.locator(".point").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/items/?**status=**")
    rows = page.locator("#items tbody tr")
    expect(rows.first).to_be_visible()
    external_id = rows.first.locator("td").first.inner_text()

    page.goto(f"{live_server.url}/items/")
    page.fill("#id_q", external_id)
    page.keyboard.press("Enter")
    page.wait_for_url("**q=**")
    page.locator("#items tbody tr td a", has_text=external_id).first.click()
    page.wait_for_url(f"**/trail/{PROJECT}/**")
    expect(page.locator("h1")).to_contain_text(external_id)
    if os.environ.get("SCREENSHOTS") == "1":
        page.goto(f"{live_server.url}/items/?q={external_id[:3]}")
        page.screenshot(path=str(SCREENSHOT.parent / "item-search.png"))
