"""REST endpoints of routing, mounted under /api/."""

from django.urls import path

from routing import api

urlpatterns = [
    path("projects/<slug:slug>/next", api.ClaimNextView.as_view(), name="assignment-next"),
    path("projects/<slug:slug>/next-to-label", api.NextToLabelView.as_view(), name="next-to-label"),
    path("assignments/<int:assignment_id>/submit", api.AssignmentSubmitView.as_view(), name="assignment-submit"),
    path("assignments/<int:assignment_id>/decline", api.AssignmentDeclineView.as_view(), name="assignment-decline"),
    path("assignments/<int:assignment_id>/review", api.AssignmentReviewView.as_view(), name="assignment-review"),
    path("audit/export", api.AuditExportView.as_view(), name="audit-export"),
    path(
        "projects/<slug:slug>/items/<path:external_id>/decisions/",
        api.ItemDecisionTrailView.as_view(),
        name="item-decisions",
    ),
]
