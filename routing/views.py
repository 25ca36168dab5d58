"""The decision trail page: how routing handled an item, step by step."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from labeling.models import Item
from routing import page_selectors


@login_required
@require_GET
def item_trail(request: HttpRequest, item_id: int) -> HttpResponse:
    """Everything that happened to one item, for admins and stakeholders."""
    if not page_selectors.can_view_trail(user=request.user):
        raise PermissionDenied("Item trails are for admins and stakeholders.")
    item = get_object_or_404(Item.objects.select_related("project", "domain"), pk=item_id)
    return render(request, "routing/trail.html", {
        "item": item,
        "entries": page_selectors.item_trail(item=item),
        "view": page_selectors.trail_item_view(item=item, user=request.user),
    })
