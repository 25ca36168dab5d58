"""The decision trail page: how routing handled an item, step by step."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from labeling.models import Item
from routing import page_selectors

DENIED = "Item trails are for admins and stakeholders."


def _item(**lookup) -> Item:
    item = Item.objects.select_related("project", "domain").filter(**lookup).first()
    if item is None:
        raise Http404("No such item.")
    return item


@login_required
@require_GET
def item_trail(request: HttpRequest, project: str, external_id: str) -> HttpResponse:
    """Everything that happened to one item, for admins and stakeholders."""
    if not page_selectors.can_view_trail(user=request.user):
        raise PermissionDenied(DENIED)
    item = _item(project__slug=project, external_id=external_id)
    return render(request, "routing/trail.html", {
        "item": item,
        "entries": page_selectors.item_trail(item=item),
        "view": page_selectors.trail_item_view(item=item, user=request.user),
    })


@login_required
@require_GET
def item_trail_by_id(request: HttpRequest, item_id: int) -> HttpResponse:
    if not page_selectors.can_view_trail(user=request.user):
        raise PermissionDenied(DENIED)
    item = _item(pk=item_id)
    return redirect("routing:trail", project=item.project.slug, external_id=item.external_id)
