"""Routing's REST endpoints: an item's decision trail, and the audit export (staff only)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import Item
from routing import selectors

EXPORT_KINDS = ("events", "decisions")


class ItemDecisionTrailView(APIView):
    """Every routing decision about one item, oldest first."""

    permission_classes = [IsAuthenticated]

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
