"""What every report shares: the request's ReportContext (scope, clock, memoised selector calls), the
grouping and summing helpers over snapshot rows, and the common columns."""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings

from dashboards import metrics, selectors
from dashboards.rollup import ALL_ROUTES
from dashboards.selectors import Scope
from dashboards.tables import INT, PERCENT, Column
from labeling.models import ItemStatus, Project

ALL = "All"
NO_DOMAIN = "(no domain)"
# Cohen's kappa is shown for pairs among this many of the most active crowd annotators in scope.
PAIR_ANNOTATORS = 8
MIN_SHARED_ITEMS = 10
DRIFT_RECENT_DAYS = 7
DRIFT_REFERENCE_DAYS = 28
DRIFT_PSI_ALERT_DEFAULT = 0.2
COVERAGE_HOURS = 7 * 24
# Series over time go by day while the history in scope spans fewer weeks than this, and then show the
# last DAILY_DAYS days (a series of one or two weekly points says nothing).
MIN_WEEKS = 4
DAILY_DAYS = 28
OPEN_STATUSES = (ItemStatus.NEW, ItemStatus.ROUTED, ItemStatus.IN_CROWD_REVIEW, ItemStatus.ESCALATED)


class ReportContext:
    """One request's scope and clock, with the selector calls several reports share memoised for the
    request (never across requests: snapshots change every minute)."""

    def __init__(self, scope: Scope, *, now: dt.datetime):
        self.scope = scope
        self.now = now
        self._annotators: list[dict[str, Any]] | None = None
        self._configs: dict[int, Any] | None = None
        self._shared: dict[str, Any] = {}
        self.projects = {p.pk: p for p in scope.projects}

    def item_stats(self, fields: Sequence[str], *, days: tuple[dt.date, dt.date] | None = None) -> list[dict[str, Any]]:
        return selectors.item_stats(self.scope, fields, days=days)

    def annotator_stats(self) -> list[dict[str, Any]]:
        if self._annotators is None:
            self._annotators = selectors.annotator_stats(self.scope)
        return self._annotators

    def day_stats(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        """Day rows of the last DAILY_DAYS days of the scope (up to its end, or today), for series by day."""
        end = self.scope.until or self.now.astimezone(dt.UTC).date()
        start = end - dt.timedelta(days=DAILY_DAYS - 1)
        if self.scope.since and self.scope.since > start:
            start = self.scope.since
        return selectors.item_day_stats(self.scope, fields, start=start, end=end)

    def shared(self, name: str, compute: Callable[[], Any]) -> Any:
        """`compute()`'s result, computed once per request for every report that asks for `name`."""
        if name not in self._shared:
            self._shared[name] = compute()
        return self._shared[name]

    def policy_configs(self) -> dict[int, Any]:
        if self._configs is None:
            self._configs = selectors.policy_configs(self.scope.projects)
        return self._configs


def drift_alert_level() -> float:
    """settings.DRIFT_PSI_ALERT (default 0.2), read on every call so tests and deployments can change it."""
    return float(getattr(settings, "DRIFT_PSI_ALERT", DRIFT_PSI_ALERT_DEFAULT))


def domain_key(row: Mapping[str, Any]) -> str:
    return row["domain"] or NO_DOMAIN


def group_rows(rows: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]) -> dict[Any, list]:
    groups: dict[Any, list] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0])))


def route_order(groups: Mapping[str, Any]) -> list[str]:
    return [r for r in ALL_ROUTES if r in groups]


def sum_of(rows: Iterable[Mapping[str, Any]], name: str) -> int | float:
    return sum(row[name] for row in rows)


def counter_total(rows: Iterable[Mapping[str, Any]], name: str) -> Counter:
    total: Counter = Counter()
    for row in rows:
        total.update(row[name])
    return total


def week_filter(week: dt.date) -> dict[str, str]:
    """The item search's filter for the items ingested in `week` (Monday to Sunday)."""
    return {"since": week.isoformat(), "until": (week + dt.timedelta(days=6)).isoformat()}


def day_filter(day: dt.date) -> dict[str, str]:
    return {"since": day.isoformat(), "until": day.isoformat()}


def domain_filter(domain: str) -> dict[str, str]:
    """The item search's filter for a domain row (the "(no domain)" row has none: it shows every item)."""
    return {} if domain == NO_DOMAIN else {"domain": domain}


def accuracy_row(key: str, value: Any, correct: int, n: int) -> dict[str, Any]:
    interval = metrics.accuracy_with_interval(int(correct), int(n))
    return {
        key: value,
        "n": int(n),
        "correct": int(correct),
        "accuracy": interval.accuracy if interval else None,
        "low": interval.low if interval else None,
        "high": interval.high if interval else None,
    }


ACCURACY_COLUMNS = (
    Column("n", "Gold items", INT),
    Column("correct", "Correct", INT),
    Column("accuracy", "Accuracy", PERCENT),
    Column("low", "95% CI low", PERCENT),
    Column("high", "95% CI high", PERCENT),
)


def class_order(projects: Sequence[Project], *seen: Iterable[str]) -> list[str]:
    """Class order for tables: the projects' classes in their order, then any other label seen."""
    order: list[str] = []
    for project in projects:
        order += [c for c in project.class_names if c not in order]
    extra = set().union(*[set(s) for s in seen]) - set(order) if seen else set()
    return order + sorted(extra)
