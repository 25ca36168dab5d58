from __future__ import annotations

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
from labeling.models import Item, Project
from routing import page_selectors, selectors

EXPORT_KINDS = ("events", "decisions")


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
                "final_label": item.final_label,
                "final_source": item.final_source,
                "decisions": [selectors.decision_trail_row(d) for d in selectors.decision_trail(item)],
            }
        )


class AuditExportView(APIView):
    """Audit events or routing decisions in [since, until) as JSON lines, streamed."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str, required=True, description="YYYY-MM-DD or ISO 8601 datetime (inclusive)"),
            OpenApiParameter("until", str, description="YYYY-MM-DD (whole day included) or datetime; default now"),
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
            if not raw:
                if name == "since":
                    errors.append({"field": "since", "message": "required (YYYY-MM-DD or ISO 8601 datetime)"})
                else:
                    bounds[name] = timezone.now()
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


ERRORS = inline_serializer(
    "ValidationErrors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "FieldError", {"field": serializers.CharField(), "message": serializers.CharField()}
            )
        )
    },
)


DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})


NEXT_TO_LABEL_DEFAULT = 100


def _whole_param(request: Request, name: str, default: int) -> int | str:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        return f"must be a whole number, not {raw!r}"


class NextToLabelView(APIView):
    """Unlabeled items, most uncertain prediction first, for active learning (docs/pilot.md)."""

    permission_classes = [ReadsRoutingEvidence]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "limit", int, description=f"items to return, 1 to {selectors.NEXT_TO_LABEL_MAX} (default "
                f"{NEXT_TO_LABEL_DEFAULT})"
            ),
            OpenApiParameter("offset", int, description="items to skip (default 0)"),
        ],
        responses={
            200: inline_serializer(
                "NextToLabel",
                {
                    "project": serializers.CharField(),
                    "limit": serializers.IntegerField(),
                    "offset": serializers.IntegerField(),
                    "results": serializers.ListField(
                        child=inline_serializer(
                            "NextToLabelItem",
                            {
                                "external_id": serializers.CharField(),
                                "data": serializers.DictField(),
                                "status": serializers.CharField(),
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
        limit = _whole_param(request, "limit", NEXT_TO_LABEL_DEFAULT)
        offset = _whole_param(request, "offset", 0)
        errors = []
        if isinstance(limit, str) or not 1 <= limit <= selectors.NEXT_TO_LABEL_MAX:
            reason = limit if isinstance(limit, str) else f"must be 1 to {selectors.NEXT_TO_LABEL_MAX}"
            errors.append({"field": "limit", "message": reason})
        if isinstance(offset, str) or offset < 0:
            errors.append({"field": "offset", "message": offset if isinstance(offset, str) else "must be 0 or more"})
        if errors:
            return Response({"errors": errors}, status=400)
        rows = selectors.next_to_label_rows(project=project, limit=limit, offset=offset)
        return Response({"project": project.slug, "limit": limit, "offset": offset, "results": rows})
