"""A URLconf for tests/test_error_pages.py: the workbench's, plus views that fail."""
from django.core.exceptions import PermissionDenied
from django.urls import path

from workbench.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def boom(request):
    raise RuntimeError("a bug")


def refused(request):
    raise PermissionDenied


urlpatterns = [
    path("api/boom", boom),
    path("api/refused", refused),
    path("boom/", boom),
    *urlpatterns,
]
