"""The dashboard pages: who may see them, filters through htmx, CSV downloads, charts without inline scripts."""
from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import pytest
from django.test import Client

from tests.dashboards.builders import user

PAGE = "/dashboards/pets/"


def client_for(who) -> Client:
    client = Client()
    if who is not None:
        client.force_login(who)
    return client


class TestAccess:
    def test_anonymous_is_sent_to_log_in(self, s):
        response = client_for(None).get(PAGE)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

    def test_non_stakeholder_is_forbidden(self, s):
        assert client_for(user()).get(PAGE).status_code == 403
        assert client_for(user()).get("/dashboards/").status_code == 403

    @pytest.mark.parametrize("kind", ["stakeholder", "staff"])
    def test_stakeholders_and_staff_see_it(self, s, kind):
        who = user(stakeholder=True) if kind == "stakeholder" else user(staff=True)
        assert client_for(who).get(PAGE).status_code == 200

    def test_unknown_project_is_404(self, s):
        assert client_for(user(stakeholder=True)).get("/dashboards/nope/").status_code == 404


class TestPage:
    def test_every_chart_has_its_figure_and_its_table(self, s):
        response = client_for(user(stakeholder=True)).get(PAGE)
        html = response.content.decode()
        figures = [json.loads(unescape(f)) for f in re.findall(r'data-figure="([^"]*)"', html)]
        assert len(figures) >= 20
        assert all("data" in f and "layout" in f for f in figures)
        tables = set(re.findall(r'id="table-([\w-]+)"', html))
        charts = [c for report in response.context["reports"] for c in report.charts]
        assert len(charts) == len(figures) and {c.table for c in charts} <= tables

    def test_no_inline_script_and_a_strict_csp(self, s):
        response = client_for(user(stakeholder=True)).get(PAGE)
        html = response.content.decode()
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts and all('src="' in attrs for attrs in scripts), scripts
        assert "/static/vendor/plotly.min.js" in html and "/static/dashboards/dashboard.js" in html
        assert "script-src 'self'" in response["Content-Security-Policy"]

    def test_people_are_numbered_the_same_in_every_table_for_non_staff(self, s):
        html = client_for(user(stakeholder=True)).get(PAGE).content.decode()
        assert "Dr. Ada" not in html and "Carla One" not in html
        assert "Annotator 4" in html
        staff_html = client_for(user(staff=True)).get(PAGE).content.decode()
        assert "Dr. Ada" in staff_html

    def test_headline_figures_are_formatted(self, s):
        html = client_for(user(stakeholder=True)).get(PAGE).content.decode()
        assert "66.7%" in html  # final labels right on 4 of 6 gold items
        assert "n/a" in html  # mean Cohen's kappa: no pair shares ten items

    def test_all_projects_page(self, s):
        response = client_for(user(stakeholder=True)).get("/dashboards/")
        assert response.status_code == 200
        assert "All projects" in response.content.decode()


class TestFilters:
    def test_htmx_request_gets_only_the_panels_with_filters_applied(self, s):
        response = client_for(user(stakeholder=True)).get(
            PAGE, {"domain": "pets/cats", "route": "expert"}, HTTP_HX_REQUEST="true"
        )
        html = response.content.decode()
        assert response.status_code == 200 and "<html" not in html and 'data-figure="' in html
        gold = next(r for r in response.context["reports"] if r.name == "gold_accuracy")
        assert [(r["route"], r["n"]) for r in gold.table("gold_by_route").rows] == [("expert", 1)]
        # The CSV links carry the same filters.
        assert "?domain=pets%2Fcats&amp;route=expert&amp;format=csv&amp;table=effort" in html

    def test_filter_form_posts_back_to_the_panels(self, s):
        html = client_for(user(stakeholder=True)).get(PAGE).content.decode()
        assert 'hx-get="/dashboards/pets/"' in html and 'hx-target="#panels"' in html
        assert '<option value="pets/cats">' in html and '<option value="pets">' in html

    def test_bad_filters_are_explained(self, s):
        response = client_for(user(stakeholder=True)).get(PAGE, {"since": "2026-03-09", "until": "2026-03-01"})
        assert response.status_code == 400
        assert "must be on or after 2026-03-09" in response.content.decode()


class TestCsv:
    def download(self, who, table: str, **params) -> tuple[int, list[list[str]], str]:
        response = client_for(who).get(PAGE, {"format": "csv", "table": table, **params})
        if response.status_code != 200:
            return response.status_code, [], ""
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        return response.status_code, rows, response["Content-Disposition"]

    def test_effort_as_csv_for_a_stakeholder(self, s):
        status, rows, disposition = self.download(user(stakeholder=True), "effort")
        assert status == 200 and disposition == 'attachment; filename="pets-effort.csv"'
        assert rows[0][:3] == ["Annotator", "Role", "Items"]
        by_person = {r[0]: r for r in rows[1:]}
        assert set(by_person) == {"Annotator 1", "Annotator 2", "Annotator 3", "Annotator 4"}
        assert by_person["Annotator 4"][1:3] == ["expert", "2"] and by_person["Annotator 4"][-1] == "6.0"

    def test_staff_csv_names_people_and_filters_apply(self, s):
        _, rows, _ = self.download(user(staff=True), "gold_by_annotator", domain="pets/dogs")
        by_person = {r[0]: r for r in rows[1:]}
        # pets/dogs: c1 and c3 labelled m2 (gold dog) cat, c2 dog; ada labelled u2 cat (gold cat).
        assert {name: (r[2], r[3]) for name, r in by_person.items()} == {
            "Carla One": ("1", "0"), "Carl Two": ("1", "1"), "Cleo Three": ("1", "0"), "Dr. Ada": ("1", "1"),
        }

    def test_unknown_table_is_404(self, s):
        status, _, _ = self.download(user(stakeholder=True), "secrets")
        assert status == 404
