"""Formatting of dashboard values by column kind (dashboards.tables): percentages, durations, counts."""
from __future__ import annotations

import datetime as dt
from typing import Any

from django import template

from dashboards import tables

register = template.Library()
NOT_AVAILABLE = "n/a"


def duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def cell(value: Any, kind: str = tables.TEXT) -> str:
    """`value` as the page shows it; n/a for a statistic that is undefined."""
    if value is None or value == "":
        return NOT_AVAILABLE if kind != tables.TEXT else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == tables.PERCENT:
        return f"{float(value):.1%}"
    if kind == tables.FLOAT:
        number = float(value)
        return f"{number:,.0f}" if abs(number) >= 100 or number.is_integer() else f"{number:,.3f}"
    if kind == tables.INT:
        return f"{int(value):,}"
    if kind == tables.DURATION:
        return duration(float(value))
    if kind == tables.DATE and isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


@register.filter
def numeric(kind: str) -> bool:
    return kind in (tables.INT, tables.FLOAT, tables.PERCENT, tables.DURATION)


@register.filter
def get_cell(row: dict, column: tables.Column) -> str:
    """The formatted value of `column` in `row`."""
    return cell(row.get(column.key), column.kind)
