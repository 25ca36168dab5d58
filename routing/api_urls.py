"""REST endpoints of routing, mounted under /api/."""

from django.urls import path

from routing import api

urlpatterns = [
    path("projects/<slug:slug>/next-to-label", api.NextToLabelView.as_view(), name="next-to-label"),
    path("audit/export", api.AuditExportView.as_view(), name="audit-export"),
    path(
        "projects/<slug:slug>/items/<path:external_id>/decisions/",
        api.ItemDecisionTrailView.as_view(),
        name="item-decisions",
    ),
]
