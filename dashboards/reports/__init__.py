"""The dashboard's metrics: each report reads snapshot rows (and a few live figures) through
dashboards.selectors, sums them, and computes its statistics with the pure dashboards.metrics.

Every report is a function `(ReportContext) -> tables.Report`; REPORTS names them for the page, the CSV
download and the JSON API, and `build` runs several over one scope. What "route", "escalated" and
"disagreement item" mean is defined in dashboards.rollup. The reports live by subject in `labels`
(agreement, time to label, gold accuracy), `projects` (the all-projects overview), `operations` (value of
escalation, flow, effort, calibration) and `model` (model quality, drift); `base` holds what they share.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from dashboards.reports.base import MIN_SHARED_ITEMS, ReportContext, drift_alert_level
from dashboards.reports.labels import agreement, gold_accuracy, time_to_label
from dashboards.reports.model import drift, drift_windows, model_quality
from dashboards.reports.operations import calibration, effort, escalation_value, flow
from dashboards.reports.projects import projects
from dashboards.selectors import Scope
from dashboards.tables import Report

__all__ = ["METRIC_NAMES", "MIN_SHARED_ITEMS", "REPORTS", "TABLE_NAMES", "TABLE_REPORT", "ReportContext", "build",
           "drift_alert_level", "drift_windows"]

ReportFunction = Callable[[ReportContext], Report]
REPORTS: dict[str, ReportFunction] = {
    "projects": projects,
    "agreement": agreement,
    "time_to_label": time_to_label,
    "gold_accuracy": gold_accuracy,
    "escalation_value": escalation_value,
    "flow": flow,
    "model_quality": model_quality,
    "effort": effort,
    "drift": drift,
    "calibration": calibration,
}
METRIC_NAMES = tuple(REPORTS)
# Which report holds each table, for ?format=csv&table=<name>.
TABLE_NAMES = {
    "projects": ("projects",),
    "agreement": ("agreement_by_week", "agreement_by_day", "agreement_by_domain", "agreement_by_route",
        "agreement_pairs"),
    "time_to_label": ("time_by_route", "time_per_item_by_role", "sla_compliance"),
    "gold_accuracy": ("gold_by_route", "gold_by_domain", "gold_by_class", "gold_by_annotator"),
    "escalation_value": ("escalation_accuracy", "escalation_summary", "cost_by_route"),
    "flow": ("status_counts", "escalation_by_week", "escalation_by_day", "backlog", "expert_utilisation",
        "coverage_gaps"),
    "model_quality": ("model_by_project", "model_summary", "model_by_class"),
    "effort": ("effort",),
    "drift": ("drift", "drift_confidence", "drift_classes"),
    "calibration": ("calibration",),
}
TABLE_REPORT = {table: report for report, tables in TABLE_NAMES.items() for table in tables}


def build(names: Sequence[str], scope: Scope, *, now: dt.datetime) -> list[Report]:
    """The named reports over one scope, sharing one ReportContext."""
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        raise KeyError(f"unknown metric {unknown[0]!r}; metrics are {', '.join(METRIC_NAMES)}")
    ctx = ReportContext(scope, now=now)
    return [REPORTS[name](ctx) for name in names]
