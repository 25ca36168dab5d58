"""The stakeholder dashboard pages: across projects (/dashboards/) and per project (/dashboards/<slug>/).

Filters travel in the query string; the filter form re-requests the panels with htmx. `?format=csv&table=
<name>` downloads the numbers of one table with the same filters. Every page reads from the read replica
when one is configured (core.replicas): a dashboard may be seconds behind the primary.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.http import urlencode

from core import access
from core.replicas import replica_reads
from dashboards import reports, selectors
from dashboards.forms import DashboardFilterForm, ItemSearchForm
from dashboards.presentation import reports_for
from dashboards.tables import table_csv
from labeling.models import Project

FILTER_FIELDS = ("since", "until", "domain", "route")
ITEMS_PER_PAGE = 50


def _reads_replica(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The page's reads go to the read replica (core.replicas), but who may see it is decided first, on the
    primary: a replica seconds behind must not show a dashboard to someone just removed from its project."""
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        access.require(request, access.DASHBOARDS)  # reads request.principal, kept for the rest of the request
        with replica_reads():
            return view(request, *args, **kwargs)
    return wrapper


@login_required
@_reads_replica
def index(request: HttpRequest) -> HttpResponse:
    return _dashboard(request, project=None, principal=access.require(request, access.DASHBOARDS))


@login_required
@_reads_replica
def project_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    access.require(request, access.DASHBOARDS)
    project = get_object_or_404(Project, slug=slug)
    principal = access.require(request, access.DASHBOARDS, project_id=project.pk)
    return _dashboard(request, project=project, principal=principal)


def _dashboard(request: HttpRequest, *, project: Project | None, principal: access.Principal) -> HttpResponse:
    """One dashboard page: of `project`, or of every project the person's dashboards cover."""
    theirs = list(selectors.projects_for_dashboard(ids=access.dashboard_project_ids(principal)))
    projects = [project] if project else theirs
    filters = {k: v for k, v in request.GET.items() if k in FILTER_FIELDS}
    form = DashboardFilterForm(filters or None, domains=selectors.domain_choices(projects))
    context = {
        "project": project,
        "projects": theirs,
        "form": form,
        "state": selectors.snapshot_state(),
        "nav": "dashboards",
    }
    if form.is_bound and not form.is_valid():
        template = "dashboards/_panels.html" if request.htmx else "dashboards/dashboard.html"
        return render(request, template, {**context, "reports": []}, status=400)
    scope = form.scope(projects)
    now = timezone.now()
    query = urlencode(sorted((k, v) for k, v in filters.items() if v))

    if request.GET.get("format") == "csv":
        table_name = request.GET.get("table", "")
        if table_name not in reports.TABLE_REPORT:
            raise Http404(f"No table {table_name!r}.")
        (report,) = reports_for(principal, [reports.TABLE_REPORT[table_name]], scope, now=now)
        response = HttpResponse(table_csv(report.table(table_name)), content_type="text/csv; charset=utf-8")
        filename = f"{project.slug if project else 'all-projects'}-{table_name}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # The projects overview compares projects: a project's own page has nothing to compare it with.
    names = [n for n in reports.METRIC_NAMES if not (project and n == "projects")]
    item_filters = {k: v for k, v in filters.items() if v}
    if project:
        item_filters["project"] = project.slug
    built = reports_for(principal, names, scope, now=now, with_charts=True, item_filters=item_filters)
    context.update({
        "reports": built,
        "alerts": [alert for report in built for alert in report.alerts],
        "query": query,
        "scope": scope,
        "route_filter_note": bool(scope.route),
    })
    template = "dashboards/_panels.html" if request.htmx else "dashboards/dashboard.html"
    return render(request, template, context)


@login_required
@_reads_replica
def item_search(request: HttpRequest) -> HttpResponse:
    """Items by external id and by the dashboard's filters, each linked to its trail; the dashboards' rows
    and chart points link here with their filters."""
    principal = access.require(request, access.DASHBOARDS)
    projects = list(selectors.projects_for_dashboard(ids=access.dashboard_project_ids(principal)))
    params = {k: v for k, v in request.GET.items() if k != "page"}
    form = ItemSearchForm(params or None, projects=projects, domains=selectors.domain_choices(projects))
    context = {"form": form, "nav": "items", "page": None, "query": ""}
    if form.is_bound and not form.is_valid():
        return render(request, "dashboards/items.html", context, status=400)
    data = form.cleaned_data if form.is_bound else {}
    chosen = [p for p in projects if p.slug == data.get("project")] if data.get("project") else projects
    items = selectors.items_search(
        form.scope(chosen), external_id=data.get("q", "").strip(), status=data.get("status", ""),
        gold=bool(data.get("gold")), gold_label=data.get("gold_label", ""), model_version=data.get("model_version", ""),
    )
    page = Paginator(items, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    context.update({"page": page, "query": urlencode(sorted((k, v) for k, v in params.items() if v))})
    return render(request, "dashboards/items.html", context)
