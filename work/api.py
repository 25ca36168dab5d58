"""REST endpoints of work, mounted under /api/: claim the next assignment, submit, decline, review."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors as labeling_selectors
from labeling.models import Annotation, Item, Project, Review
from routing.api import DETAIL, ERRORS
from work import claims, submissions
from work import selectors as work_selectors
from work.exceptions import AssignmentConflict, AssignmentInvalid, AssignmentNotFound

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
        assignment = claims.assignment_claim_next(user=request.user, project=project)
        if assignment is None:
            if work_selectors.worker_for(user=request.user) is None:
                return Response({"detail": "Only active roster members (crowd, expert, reviewer) claim work."},
                    status=403)
            return Response(status=204)
        return Response(work_selectors.assignment_payload(assignment))


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
            annotation = submissions.assignment_submit(
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
            assignment = submissions.assignment_decline(
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
            result = submissions.review_submit(
                assignment_id=assignment_id,
                user=request.user,
                verdict=body.get("verdict", ""),
                label=body.get("label", ""),
                reason=body.get("reason", ""),
            )
            item = Item.objects.get(pk=result.item_id)
            return Response({"review": review_payload(result), "item": item_state_payload(item)})

        return _assignment_action(request, review)
