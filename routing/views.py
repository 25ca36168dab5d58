"""The decision trail page: how routing handled an item, step by step."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from core import access
from labeling.models import Item
from routing import page_selectors


@login_required
@require_GET
def item_trail(request: HttpRequest, item_id: int) -> HttpResponse:
    """Everything that happened to one item, for those who read routing evidence (core.access.EVIDENCE)."""
    access.require(request, access.EVIDENCE)
    item = get_object_or_404(Item.objects.select_related("project", "domain"), pk=item_id)
    principal = access.require(request, access.EVIDENCE, project_id=item.project_id)
    return render(request, "routing/trail.html", {
        "item": item,
        "entries": page_selectors.item_trail(item=item),
        "view": page_selectors.trail_item_view(item=item, principal=principal),
    })
