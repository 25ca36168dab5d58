"""Reports as a given person may see them: annotators named for staff, numbered for everyone else."""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from dashboards import charts, reports, selectors
from core.access import Principal, sees_names
from dashboards.selectors import Scope
from dashboards.tables import Report, annotator_ids, annotator_labels, name_annotators


def reports_for(
    principal: Principal, names: Sequence[str], scope: Scope, *, now: dt.datetime, with_charts: bool = False
) -> list[Report]:
    """The named reports over `scope`, with people labelled for `principal` (one numbering across all of them)."""
    built = reports.build(names, scope, now=now)
    ids = annotator_ids(built)
    labels = annotator_labels(ids, names=selectors.people(ids) if sees_names(principal) else None)
    named = [name_annotators(report, labels) for report in built]
    return [charts.with_charts(report) for report in named] if with_charts else named
