from __future__ import annotations

import datetime as dt

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.replicas import replica_alias
from labeling import api_support
from labeling.models import Item, Project
from routing import selectors

EXPORT_KINDS = ("events", "decisions")
# `since=` (given, empty): from the first record on.
EXPORT_START = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


# Who reads routing evidence (decision trails, the uncertainty ranking): core.access.EVIDENCE. Never an
# annotator: a trail shows other people's labels, the model's prediction and fields the project hides
# from the crowd, which would bias the annotator's own label.
ReadsRoutingEvidence = access.Allows(access.EVIDENCE)


def _evidence_project(request: Request, slug: str) -> tuple[Project, access.Principal]:
    """The project, when the requester reads its evidence (404 for no such project, 403 for not theirs)."""
    project = get_object_or_404(Project, slug=slug)
    return project, access.require(request, access.EVIDENCE, project_id=project.pk)


class ItemDecisionTrailView(APIView):
    """Every routing decision about one item, oldest first (core.access.EVIDENCE); reasons quoting a hidden
    field keep its name but not its value for everyone but staff."""

    permission_classes = [ReadsRoutingEvidence]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str, external_id: str) -> Response:
        project, principal = _evidence_project(request, slug)
        item = get_object_or_404(Item.objects.select_related("project"), project=project, external_id=external_id)
        hidden = access.fields_hidden_from_reader(principal, project.field_visibility or {})
        return Response(
            {
                "project": item.project.slug,
                "external_id": item.external_id,
                "status": item.status,
                "final_label": item.final_label or None,
                "final_source": item.final_source or None,
                "decisions": [
                    selectors.decision_trail_row(d, hidden_fields=hidden) for d in selectors.decision_trail(item)
                ],
            }
        )


class AuditExportView(APIView):
    """Audit events or routing decisions in [since, until) as JSON lines, streamed from the read replica when
    one is configured (core.replicas)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since", api_support.DATE_OR_DATETIME_OR_EMPTY, required=True,
                description="YYYY-MM-DD or ISO 8601 datetime (inclusive); empty: from the first record",
            ),
            OpenApiParameter(
                "until", api_support.DATE_OR_DATETIME_OR_EMPTY,
                description="YYYY-MM-DD (whole day included) or datetime; absent or empty: now",
            ),
            OpenApiParameter("kind", str, enum=list(EXPORT_KINDS), description="default events"),
        ],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> StreamingHttpResponse | Response:
        errors = []
        kind = request.query_params.get("kind") or "events"
        if kind not in EXPORT_KINDS:
            errors.append({"field": "kind", "message": f"must be one of: {', '.join(EXPORT_KINDS)}"})
        bounds = {}
        for name, end in (("since", False), ("until", True)):
            raw = request.query_params.get(name)
            if raw is None and name == "since":
                errors.append({"field": "since", "message": "required (YYYY-MM-DD or ISO 8601 datetime)"})
                continue
            if not raw:
                bounds[name] = EXPORT_START if name == "since" else timezone.now()
                continue
            try:
                bounds[name] = selectors.parse_bound(raw, end=end)
            except ValueError as exc:
                errors.append({"field": name, "message": str(exc)})
        if errors:
            return Response({"errors": errors}, status=400)
        lines = selectors.audit_export_lines(
            since=bounds["since"], until=bounds["until"], events=kind == "events", decisions=kind == "decisions",
            using=replica_alias(),
        )
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="audit-{kind}.jsonl"'
        return response


ERRORS = api_support.ErrorsSerializer
DETAIL = api_support.DetailSerializer


NEXT_TO_LABEL_DEFAULT = 100
NEXT_TO_LABEL_MAX_OFFSET = 10**9


class NextToLabelView(APIView):
    """Unlabeled items, most uncertain prediction first, for active learning (docs/pilot.md)."""

    permission_classes = [ReadsRoutingEvidence]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "limit", api_support.int_schema(0, selectors.NEXT_TO_LABEL_MAX),
                description=f"items to return (default {NEXT_TO_LABEL_DEFAULT})",
            ),
            OpenApiParameter(
                "offset", api_support.int_schema(0, NEXT_TO_LABEL_MAX_OFFSET), description="items to skip (default 0)"
            ),
        ],
        responses={
            200: inline_serializer(
                "NextToLabel",
                {
                    "project": api_support.StrictCharField(),
                    "limit": serializers.IntegerField(),
                    "offset": serializers.IntegerField(),
                    "results": serializers.ListField(
                        child=inline_serializer(
                            "NextToLabelItem",
                            {
                                "external_id": api_support.StrictCharField(),
                                "data": serializers.DictField(),
                                "status": api_support.StrictCharField(),
                                "signals": serializers.DictField(
                                    help_text="The latest routing decision's signals (entropy, margin, ...)."
                                ),
                            },
                        )
                    ),
                },
            ),
            400: ERRORS,
            403: OpenApiResponse(DETAIL, description="Not staff, nor a stakeholder or pipeline of this project."),
            404: OpenApiResponse(DETAIL, description="No such project."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        project, principal = _evidence_project(request, slug)
        limit = api_support.int_param(
            request, "limit", default=NEXT_TO_LABEL_DEFAULT, minimum=0, maximum=selectors.NEXT_TO_LABEL_MAX
        )
        offset = api_support.int_param(request, "offset", default=0, minimum=0, maximum=NEXT_TO_LABEL_MAX_OFFSET)
        rows = selectors.next_to_label_rows(
            project=project, limit=limit, offset=offset,
            hidden_fields=access.fields_hidden_from_reader(principal, project.field_visibility or {}),
        )
        return Response({"project": project.slug, "limit": limit, "offset": offset, "results": rows})
