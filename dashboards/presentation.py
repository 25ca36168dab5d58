"""Reports as a given person may see them: annotators named for staff, numbered for everyone else; rows
about items linked to the item search."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.urls import reverse

from core.access import Principal, sees_names
from dashboards import charts, reports, selectors
from dashboards.selectors import Scope
from dashboards.tables import Report, annotator_ids, annotator_labels, link_items, name_annotators


def reports_for(
    principal: Principal,
    names: Sequence[str],
    scope: Scope,
    *,
    now: dt.datetime,
    with_charts: bool = False,
    item_filters: Mapping[str, str] | None = None,
) -> list[Report]:
    """The named reports over `scope`, with people labelled for `principal` (one numbering across all of them).
    With `item_filters` (the page's filters as query parameters), rows about items link to them."""
    built = reports.build(names, scope, now=now)
    ids = annotator_ids(built)
    labels = annotator_labels(ids, names=selectors.people(ids) if sees_names(principal) else None)
    named = [name_annotators(report, labels) for report in built]
    if item_filters is not None:
        url = reverse("items:search")
        named = [link_items(report, url, item_filters) for report in named]
    return [charts.with_charts(report) for report in named] if with_charts else named
