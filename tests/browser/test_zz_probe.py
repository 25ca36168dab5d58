import io
import pytest
from django.core.management import call_command
from django.contrib.auth import get_user_model
from dashboards.services import snapshots_refresh
from tests.dashboards.builders import ensure_plotly_js

pytestmark = pytest.mark.browser


def test_probe(page, live_server, login_as):
    ensure_plotly_js()
    call_command("seed_demo", stdout=io.StringIO())
    snapshots_refresh(full=True)
    msgs = []
    page.on("console", lambda m: msgs.append(("console", m.type, m.text[:200])))
    page.on("pageerror", lambda e: msgs.append(("pageerror", str(e)[:200])))
    login_as(get_user_model().objects.get(username="stakeholder"))
    for url in ("/dashboards/", "/dashboards/biopsy-records/"):
        page.goto(live_server.url + url)
        page.wait_for_timeout(1500)
        print(url, "after load", len(msgs))
        charts = page.locator("[data-figure]")
        for i in range(min(charts.count(), 6)):
            charts.nth(i).hover()
        print(url, "after hover", len(msgs))
        page.select_option("#id_route", "crowd")
        page.wait_for_url("**route=crowd**")
        page.wait_for_timeout(1500)
        print(url, "after swap", len(msgs))
        page.go_back()
        page.wait_for_timeout(1500)
        print(url, "after back", len(msgs))
    for m in msgs[:20]:
        print(m)
    page.screenshot(path="/tmp/dash_probe.png", full_page=True)
