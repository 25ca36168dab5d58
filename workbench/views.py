"""Project-level pages that span every app (the workbench package sits above the apps)."""
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from experts.models import Expert


def _dashboards_url() -> str | None:
    # The dashboards app registers its index when its pages exist; until then stakeholders stay on home.
    try:
        return reverse("dashboards:index")
    except NoReverseMatch:
        return None


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Annotators, experts and reviewers land on their queue, stakeholders on the dashboards, admins here."""
    user = request.user
    on_roster = Expert.objects.filter(user=user, active=True).exists()
    if on_roster and not user.is_staff:
        return redirect("work:queue")
    dashboards_url = _dashboards_url()
    stakeholder = not user.is_staff and user.has_perm("labeling.view_item")
    if stakeholder and dashboards_url:
        return redirect(dashboards_url)
    return render(request, "home.html", {
        "dashboards_url": dashboards_url,
        "on_roster": on_roster,
        "stakeholder": stakeholder,
    })
