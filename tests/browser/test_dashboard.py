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
