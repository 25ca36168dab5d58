"""The decision trail page: how routing handled an item, step by step."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from core import access
from labeling.models import Item
from routing import page_selectors


def _item(**lookup) -> Item:
    item = Item.objects.select_related("project", "domain").filter(**lookup).first()
    if item is None:
        raise Http404("No such item.")
    return item


@login_required
@require_GET
def item_trail(request: HttpRequest, project: str, external_id: str) -> HttpResponse:
    """Everything that happened to one item, for those who read routing evidence (core.access.EVIDENCE)."""
    # Refused before the lookup, so a person without the right learns nothing of which items exist.
    access.require(request, access.EVIDENCE)
    item = _item(project__slug=project, external_id=external_id)
    principal = access.require(request, access.EVIDENCE, project_id=item.project_id)
    return render(request, "routing/trail.html", {
        "item": item,
        "entries": page_selectors.item_trail(
            item=item, hidden_fields=access.fields_hidden_from_reader(principal, item.project.field_visibility or {})
        ),
        "view": page_selectors.trail_item_view(item=item, principal=principal),
    })


@login_required
@require_GET
def item_trail_by_id(request: HttpRequest, item_id: int) -> HttpResponse:
    """The first address of a trail, by internal id: redirects to the one by project and external id."""
    access.require(request, access.EVIDENCE)
    item = _item(pk=item_id)
    access.require(request, access.EVIDENCE, project_id=item.project_id)
    return redirect("routing:trail", project=item.project.slug, external_id=item.external_id)
