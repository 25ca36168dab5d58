"""Routing's REST endpoints: an item's decision trail, the audit export (staff only), and the annotators'
work loop: claim the next assignment, submit it, decline it, review (docs/assignments.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experts import selectors as experts_selectors
from labeling import selectors as labeling_selectors
from labeling.models import Annotation, Item, Project, Review
from routing import feedback_selectors, page_selectors, selectors, services
from routing.exceptions import AssignmentConflict, AssignmentInvalid, AssignmentNotFound

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


# --- the work loop ----------------------------------------------------------------------------------------

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
CLAIMED = inline_serializer(
    "ClaimedAssignment",
    {
        "assignment": serializers.IntegerField(),
        "kind": serializers.ChoiceField(choices=["crowd", "expert", "review"]),
        "project": serializers.CharField(),
        "classes": serializers.ListField(child=serializers.CharField()),
        "decision_factors": serializers.ListField(child=serializers.CharField()),
        "rationale_required": serializers.BooleanField(),
        "item": serializers.DictField(help_text="external_id, data, metadata, domain, language (+ predictions)"),
        "status": serializers.CharField(),
        "claimed_at": serializers.DateTimeField(allow_null=True),
        "lease_expires_at": serializers.DateTimeField(allow_null=True),
        "due_at": serializers.DateTimeField(allow_null=True),
    },
)
SUBMISSION = inline_serializer(
    "Submission",
    {
        "label": serializers.CharField(),
        "rationale": serializers.CharField(required=False, allow_blank=True),
        "factors": serializers.ListField(child=serializers.CharField(), required=False),
        "confidence": serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=5),
        "time_spent_ms": serializers.IntegerField(required=False, allow_null=True, min_value=0),
        "unsure": serializers.BooleanField(required=False),
    },
)
SUBMITTED = inline_serializer(
    "Submitted",
    {"annotation": serializers.DictField(), "item": serializers.DictField()},
)
DECLINE = inline_serializer("Decline", {"reason": serializers.CharField()})
REVIEW = inline_serializer(
    "ReviewVerdict",
    {
        "verdict": serializers.ChoiceField(choices=["agree", "override"]),
        "label": serializers.CharField(required=False, allow_blank=True),
        "reason": serializers.CharField(required=False, allow_blank=True),
    },
)
NOT_YOURS = OpenApiResponse(DETAIL, description="No such assignment of yours (someone else's answers the same).")
CONFLICT = OpenApiResponse(DETAIL, description="Expired, completed, declined or cancelled: nothing was changed.")
INVALID = OpenApiResponse(ERRORS, description="Errors by field; nothing was changed.")


def _body(request: Request) -> dict[str, Any] | Response:
    if not isinstance(request.data, dict):
        return Response({"errors": [{"field": "", "message": "Send a JSON object."}]}, status=400)
    return request.data


# The answers every action on one assignment may give besides its 200.
ASSIGNMENT_ERRORS = {400: INVALID, 404: NOT_YOURS, 409: CONFLICT}


def _assignment_action(request: Request, act: Callable[[dict[str, Any]], Response]) -> Response:
    """Run an action on one assignment with the request's JSON object, answering its assignment errors as
    404 / 409 / 400."""
    body = _body(request)
    if isinstance(body, Response):
        return body
    try:
        return act(body)
    except AssignmentNotFound as exc:
        return Response({"detail": str(exc)}, status=404)
    except AssignmentConflict as exc:
        return Response({"detail": str(exc)}, status=409)
    except AssignmentInvalid as exc:
        return Response({"errors": exc.as_list()}, status=400)


def annotation_payload(annotation: Annotation) -> dict[str, Any]:
    return {
        "id": annotation.pk,
        "label": annotation.label,
        "rationale": annotation.rationale,
        "factors": annotation.factors,
        "confidence": annotation.confidence,
        "unsure": annotation.unsure,
        "time_spent_ms": annotation.time_spent_ms,
        "submitted_at": annotation.submitted_at.isoformat(),
    }


def item_state_payload(item: Item) -> dict[str, Any]:
    return {
        "external_id": item.external_id,
        "status": item.status,
        "final_label": item.final_label or None,
        "final_source": item.final_source or None,
        "final_confidence": item.final_confidence,
    }


class ClaimNextView(APIView):
    """Claim your next assignment in a project: 200 with the item and the lease, or 204 when none waits."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={
            200: CLAIMED,
            204: OpenApiResponse(description="Nothing to do for you in this project right now."),
            403: OpenApiResponse(DETAIL, description="You are not an active member of the roster."),
            404: OpenApiResponse(DETAIL, description="No such project."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        try:
            project = labeling_selectors.project_get(slug=slug)
        except Project.DoesNotExist:
            raise Http404(f"No project {slug!r}.") from None
        assignment = services.assignment_claim_next(user=request.user, project=project)
        if assignment is None:
            if selectors.worker_for(user=request.user) is None:
                return Response({"detail": "Only active roster members (crowd, expert, reviewer) claim work."},
                    status=403)
            return Response(status=204)
        return Response(selectors.assignment_payload(assignment))


class AssignmentSubmitView(APIView):
    """Submit your label for an assignment; the item is routed again at once and its new state returned."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=SUBMISSION,
        responses={200: SUBMITTED, **ASSIGNMENT_ERRORS},
        examples=[
            OpenApiExample(
                "Crowd label",
                value={"label": "7", "factors": ["smudge"], "confidence": 4, "time_spent_ms": 5200},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        def submit(body: dict[str, Any]) -> Response:
            annotation = services.assignment_submit(
                assignment_id=assignment_id,
                user=request.user,
                label=body.get("label"),
                rationale=body.get("rationale", ""),
                factors=body.get("factors", ()),
                confidence=body.get("confidence"),
                time_spent_ms=body.get("time_spent_ms"),
                unsure=body.get("unsure") is True,
            )
            return Response({"annotation": annotation_payload(annotation), "item": item_state_payload(annotation.item)})

        return _assignment_action(request, submit)


class AssignmentDeclineView(APIView):
    """Hand an assignment back with a reason; it goes to the next person (docs/assignments.md)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=DECLINE,
        responses={
            200: inline_serializer("Declined",
                {"assignment": serializers.IntegerField(), "status": serializers.CharField()}),
            **ASSIGNMENT_ERRORS,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        def decline(body: dict[str, Any]) -> Response:
            assignment = services.assignment_decline(
                assignment_id=assignment_id, user=request.user, reason=body.get("reason", "")
            )
            return Response({"assignment": assignment.pk, "status": assignment.status})

        return _assignment_action(request, decline)


def review_payload(review: Review) -> dict[str, Any]:
    return {
        "id": review.pk,
        "verdict": review.verdict,
        "previous_label": review.previous_label,
        "label": review.label,
        "reason": review.reason,
    }


class AssignmentReviewView(APIView):
    """Give your verdict on a review assignment: agree, or override with a label and a reason."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=REVIEW,
        responses={
            200: inline_serializer("Reviewed", {"review": serializers.DictField(), "item": serializers.DictField()}),
            **ASSIGNMENT_ERRORS,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        def review(body: dict[str, Any]) -> Response:
            result = services.review_submit(
                assignment_id=assignment_id,
                user=request.user,
                verdict=body.get("verdict", ""),
                label=body.get("label", ""),
                reason=body.get("reason", ""),
            )
            item = Item.objects.get(pk=result.item_id)
            return Response({"review": review_payload(result), "item": item_state_payload(item)})

        return _assignment_action(request, review)


# --- active learning ----------------------------------------------------------------------------------------


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
                "limit", int, description=f"items to return, 1 to {feedback_selectors.NEXT_TO_LABEL_MAX} (default "
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
        if isinstance(limit, str) or not 1 <= limit <= feedback_selectors.NEXT_TO_LABEL_MAX:
            reason = limit if isinstance(limit, str) else f"must be 1 to {feedback_selectors.NEXT_TO_LABEL_MAX}"
            errors.append({"field": "limit", "message": reason})
        if isinstance(offset, str) or offset < 0:
            errors.append({"field": "offset", "message": offset if isinstance(offset, str) else "must be 0 or more"})
        if errors:
            return Response({"errors": errors}, status=400)
        rows = feedback_selectors.next_to_label_rows(project=project, limit=limit, offset=offset)
        return Response({"project": project.slug, "limit": limit, "offset": offset, "results": rows})
