from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experts import selectors as experts_selectors
from labeling import api_support
from labeling.models import Item, Project
from routing import page_selectors, selectors

EXPORT_KINDS = ("events", "decisions")
# `since=` (given, empty): from the first record on.
EXPORT_START = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


class ReadsRoutingEvidence(BasePermission):
    """Who reads routing evidence (decision trails, the uncertainty ranking): staff; stakeholders, who hold
    the permission to view items (as for the trail pages); and clients that authenticate with an API token
    (training pipelines). Never someone on the labeling roster (active or not) who is not staff: a trail
    shows other people's labels, the model's prediction and fields the project hides from the crowd,
    which would bias the annotator's own label."""

    message = "Staff, stakeholders and API token clients only; annotators do not see routing evidence."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if user.is_staff:
            return True
        if experts_selectors.is_on_roster(user_id=user.pk):
            return False
        return isinstance(request.auth, Token) or page_selectors.can_view_trail(user=user)


class ItemDecisionTrailView(APIView):
    """Every routing decision about one item, oldest first (ReadsRoutingEvidence)."""

    permission_classes = [ReadsRoutingEvidence]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, slug: str, external_id: str) -> Response:
        item = get_object_or_404(Item.objects.select_related("project"), project__slug=slug, external_id=external_id)
        return Response(
            {
                "project": item.project.slug,
                "external_id": item.external_id,
                "status": item.status,
                "final_label": item.final_label or None,
                "final_source": item.final_source or None,
                "decisions": [selectors.decision_trail_row(d) for d in selectors.decision_trail(item)],
            }
        )


class AuditExportView(APIView):
    """Audit events or routing decisions in [since, until) as JSON lines, streamed."""

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
            since=bounds["since"], until=bounds["until"], events=kind == "events", decisions=kind == "decisions"
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
            404: OpenApiResponse(DETAIL, description="No such project."),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        project = get_object_or_404(Project, slug=slug)
        limit = api_support.int_param(
            request, "limit", default=NEXT_TO_LABEL_DEFAULT, minimum=0, maximum=selectors.NEXT_TO_LABEL_MAX
        )
        offset = api_support.int_param(request, "offset", default=0, minimum=0, maximum=NEXT_TO_LABEL_MAX_OFFSET)
        rows = selectors.next_to_label_rows(project=project, limit=limit, offset=offset)
        return Response({"project": project.slug, "limit": limit, "offset": offset, "results": rows})
