"""REST endpoints of labeling, mounted under /api/."""
from django.urls import path

from core.http import accepts_large_body
from labeling import api

urlpatterns = [
    path("projects/", api.ProjectListCreateView.as_view(), name="api-project-list"),
    path("projects/<slug:slug>/", api.ProjectDetailView.as_view(), name="api-project-detail"),
    path("projects/<slug:slug>/members/", api.ProjectMembersView.as_view(), name="api-project-members"),
    path("projects/<slug:slug>/members/<str:username>/", api.ProjectMemberView.as_view(), name="api-project-member"),
    path("projects/<slug:slug>/items/", accepts_large_body(api.ItemListIngestView.as_view()), name="api-item-list"),
    # external ids are the client's and may contain slashes.
    path("projects/<slug:slug>/items/<path:external_id>/", api.ItemDetailView.as_view(), name="api-item-detail"),
    path("projects/<slug:slug>/export", api.ExportView.as_view(), name="api-export"),
]
