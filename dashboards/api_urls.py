"""REST endpoints of dashboards, mounted under /api/."""
from django.urls import path

from dashboards import api

urlpatterns = [
    path("metrics/<str:name>/", api.MetricView.as_view(), name="dashboard-metric"),
]
