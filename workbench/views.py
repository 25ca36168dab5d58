"""Project-level pages that span every app (the workbench package sits above the apps)."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from core import access


def _dashboards_url() -> str | None:
    # The dashboards app registers its index when its pages exist; until then stakeholders stay on home.
    try:
        return reverse("dashboards:index")
    except NoReverseMatch:
        return None


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Annotators, experts and reviewers land on their queue, stakeholders on the dashboards, admins here."""
    principal = access.require(request, access.SIGNED_IN)
    if principal.role != access.Role.STAFF and access.LABEL.allows(principal):
        return redirect("work:queue")
    dashboards_url = _dashboards_url()
    if principal.role != access.Role.STAFF and dashboards_url and access.DASHBOARDS.allows(principal):
        return redirect(dashboards_url)
    return render(request, "home.html", {"dashboards_url": dashboards_url})
