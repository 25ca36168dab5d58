"""REST endpoints of work, mounted under /api/."""

from django.urls import path

from work import api

urlpatterns = [
    path("projects/<slug:slug>/next", api.ClaimNextView.as_view(), name="assignment-next"),
    path("assignments/<int:assignment_id>/submit", api.AssignmentSubmitView.as_view(), name="assignment-submit"),
    path("assignments/<int:assignment_id>/decline", api.AssignmentDeclineView.as_view(), name="assignment-decline"),
    path("assignments/<int:assignment_id>/review", api.AssignmentReviewView.as_view(), name="assignment-review"),
]
