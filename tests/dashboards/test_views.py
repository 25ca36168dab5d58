"""The dashboard pages: who may see them, filters through htmx, CSV downloads, charts without inline scripts."""
from __future__ import annotations

import csv
import io
import json
import re
from html import unescape

import plotly.graph_objects as go
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
        for figure in figures:
            go.Figure(figure)  # raises on anything plotly does not know
        tables = set(re.findall(r'id="table-([\w-]+)"', html))
        charts = [c for report in response.context["reports"] for c in report.charts]
        assert len(charts) == len(figures) and {c.table for c in charts} <= tables

    def test_table_rows_and_chart_points_about_items_link_to_them(self, s):
        client = client_for(user(stakeholder=True))
        html = client.get(PAGE + "?until=2026-03-04").content.decode()
        # The gold-by-route table: each route's row opens the search for that route's gold items, on this
        # project and within the page's filters.
        expert = "/items/?gold=1&amp;project=pets&amp;route=expert&amp;until=2026-03-04"
        assert f'<a href="{expert}"' in html
        figures = {f["layout"]["title"]["text"]: f for f in
                   (json.loads(unescape(f)) for f in re.findall(r'data-figure="([^"]*)"', html))}
        [points] = figures["Accuracy on gold by route"]["data"]
        assert unescape(expert) in points["customdata"]
        # The link's search finds exactly the expert route's gold items.
        found = client.get(unescape(expert)).context["page"]
        assert sorted(i.external_id for i in found) == ["u1", "u2"]

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


class TestItemSearch:
    def test_stakeholders_find_an_item_by_a_part_of_its_external_id_and_open_its_trail(self, s):
        response = client_for(user(stakeholder=True)).get("/items/?q=U1")
        assert response.status_code == 200
        assert [i.external_id for i in response.context["page"]] == ["u1"]
        assert 'href="/trail/pets/u1/"' in response.content.decode()

    def test_filters_narrow_the_search(self, s):
        client = client_for(user(stakeholder=True))
        found = client.get("/items/?project=pets&status=escalated").context["page"]
        assert [i.external_id for i in found] == ["u3"]
        found = client.get("/items/?project=pets&gold_label=dog&domain=pets/cats").context["page"]
        assert [i.external_id for i in found] == ["u1"]

    def test_bad_filters_answer_400_naming_the_field(self, s):
        response = client_for(user(stakeholder=True)).get("/items/?since=2026-03-05&until=2026-03-01")
        assert response.status_code == 400 and "until: must be on or after 2026-03-05" in response.content.decode()

    def test_people_without_dashboards_are_forbidden(self, s):
        assert client_for(user()).get("/items/?q=u1").status_code == 403
