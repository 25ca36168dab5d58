"""The admin index's "Needs attention" panel (templates/admin/index.html): declined expert items that
nobody on shift holds (work.selectors.declined_waiting)."""

from django import template
from django.utils import timezone

from work import selectors

register = template.Library()


@register.inclusion_tag("admin/work/_needs_attention.html")
def needs_attention(limit: int = 20) -> dict:
    total, rows = selectors.declined_waiting(now=timezone.now(), limit=limit)
    return {"total": total, "rows": rows, "more": total - len(rows)}
