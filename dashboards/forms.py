"""The dashboard's filters (date range, domain, route), shared by the page and the JSON API."""
from __future__ import annotations

from collections.abc import Sequence

from django import forms

from dashboards.rollup import ALL_ROUTES
from dashboards.selectors import Scope
from labeling.models import ItemStatus, Project

# ISO dates only, as the API documents (format: date); the page's date inputs send them too.
ISO_DATE = ["%Y-%m-%d"]


class DashboardFilterForm(forms.Form):
    since = forms.DateField(required=False, input_formats=ISO_DATE, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="First ingest day (UTC), included.")
    until = forms.DateField(required=False, input_formats=ISO_DATE, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="Last ingest day (UTC), included.")
    domain = forms.ChoiceField(required=False, help_text="A domain and everything below it.")
    route = forms.ChoiceField(required=False, choices=[("", "All routes"), *[(r, r) for r in ALL_ROUTES]])

    def __init__(self, *args, domains: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domain"].choices = [("", "All domains"), *[(d, d) for d in domains]]

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", f"must be on or after {since}")
        return data

    def scope(self, projects: Sequence[Project]) -> Scope:
        """The validated filters as a Scope (call after is_valid())."""
        data = self.cleaned_data if self.is_bound else {}
        return Scope(
            projects=tuple(projects),
            since=data.get("since"),
            until=data.get("until"),
            domain=data.get("domain") or "",
            route=data.get("route") or "",
        )

    def errors_list(self) -> list[dict[str, str]]:
        return [{"field": field, "message": str(message)} for field, messages in self.errors.items()
            for message in messages]


class ItemSearchForm(DashboardFilterForm):
    """The item search: the dashboard's filters plus a project, a part of the external id and what the
    dashboard's rows narrow to (status, gold, model version)."""

    q = forms.CharField(required=False, max_length=255, label="External id",
                        help_text="Any part of the item's external id.")
    project = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *ItemStatus.choices])
    gold = forms.BooleanField(required=False, label="With gold only")
    gold_label = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
    model_version = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
    field_order = ("q", "project", "since", "until", "domain", "route", "status", "gold")

    def __init__(self, *args, projects: Sequence[Project] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "All projects"), *[(p.slug, p.name) for p in projects]]
