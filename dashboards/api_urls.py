"""REST endpoints of dashboards, mounted under /api/."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
