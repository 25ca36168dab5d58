"""The dashboard's JSON API: one endpoint per metric, with the page's filters (GET /api/metrics/<name>/)."""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.replicas import replica_reads
from dashboards import reports, selectors
from dashboards.forms import DashboardFilterForm
from dashboards.presentation import reports_for
from dashboards.rollup import ALL_ROUTES
from labeling import api_support
from labeling.models import Project

MetricResponse = inline_serializer(
    name="DashboardMetric",
    fields={
        "metric": serializers.CharField(),
        "title": serializers.CharField(),
        "description": serializers.CharField(),
        "filters": serializers.DictField(help_text="The filters applied: project, since, until, domain, route."),
        "snapshot_refreshed_at": serializers.DateTimeField(allow_null=True),
        "headline": serializers.DictField(help_text="Headline figures by key; null where undefined."),
        "tables": serializers.DictField(
            child=inline_serializer(
                name="DashboardTable",
                fields={
                    "title": serializers.CharField(),
                    "columns": serializers.ListField(child=serializers.DictField()),
                    "rows": serializers.ListField(child=serializers.DictField()),
                    "note": serializers.CharField(),
                },
            ),
            help_text="The numbers behind the metric's charts, by table name.",
        ),
        "alerts": serializers.ListField(child=serializers.CharField()),
        "notes": serializers.ListField(child=serializers.CharField()),
    },
)

ErrorResponse = api_support.ErrorsSerializer


class MetricView(APIView):
    """One dashboard metric over the items of a project (or of every project) in the filters' scope.

    People are named for staff and numbered ("Annotator 1") for everyone else. Figures come from the
    snapshots (refreshed every minute; see snapshot_refreshed_at), read from the read replica when one is
    configured (core.replicas)."""

    permission_classes = [access.Allows(access.DASHBOARDS)]

    @extend_schema(
        parameters=[
            OpenApiParameter("name", str, OpenApiParameter.PATH, enum=list(reports.METRIC_NAMES)),
            OpenApiParameter("project", str, description="Project slug; every project when absent."),
            OpenApiParameter("since", api_support.DATE_OR_EMPTY, description="First ingest day (UTC), included."),
            OpenApiParameter("until", api_support.DATE_OR_EMPTY, description="Last ingest day (UTC), included."),
            OpenApiParameter("domain", str, description="Domain path; covers its sub-domains."),
            OpenApiParameter("route", str, enum=list(ALL_ROUTES)),
        ],
        responses={200: MetricResponse, 400: ErrorResponse},
    )
    @replica_reads()
    def get(self, request: Request, name: str) -> Response:
        if name not in reports.REPORTS:
            return Response({"detail": f"Unknown metric {name!r}; metrics are {', '.join(reports.METRIC_NAMES)}."},
                status=404)
        principal = access.principal_of(request)
        slug = request.query_params.get("project") or ""
        if slug:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                return Response({"errors": [{"field": "project", "message": f"no project with slug {slug!r}"}]},
                    status=400)
            access.require(request, access.DASHBOARDS, project_id=project.pk)
            projects = [project]
        else:
            projects = list(selectors.projects_for_dashboard(ids=access.dashboard_project_ids(principal)))
        filters = {k: v for k, v in request.query_params.items() if k in ("since", "until", "domain", "route")}
        form = DashboardFilterForm(filters, domains=selectors.domain_choices(projects))
        if not form.is_valid():
            return Response({"errors": form.errors_list()}, status=400)
        scope = form.scope(projects)
        (report,) = reports_for(principal, [name], scope, now=timezone.now())
        state = selectors.snapshot_state()
        return Response({
            **report.to_dict(),
            "filters": {"project": slug or None,
                **{k: form.cleaned_data.get(k) or None for k in ("since", "until", "domain", "route")}},
            "snapshot_refreshed_at": state.refreshed_at if state else None,
        })
