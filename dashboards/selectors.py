"""Reads for the dashboard: snapshot rows within a scope, and the few live figures snapshots cannot hold
(open assignments now, the roster, Cohen's kappa between named annotators, the calibration flag).

No request reads annotations wholesale: every query here either reads snapshot rows (one row per
project, day, domain and route, or per annotator and day) or is bounded by an index (open assignments,
the annotations of a handful of annotators).
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum

from core.models import AuditEvent
from dashboards.models import (
    AnnotatorDayStats,
    AnnotatorWeekStats,
    CrowdPairDayStats,
    CrowdPairWeekStats,
    ItemDayStats,
    ItemWeekStats,
    SnapshotState,
)
from dashboards.rollup import ALL_ROUTES
from experts.models import Domain, Expert, Role
from experts.selectors import expert_snapshots
from labeling.models import FinalSource, Item, ItemStatus, Prediction, Project
from routing.engine.types import PolicyConfig
from routing.models import OPEN_ASSIGNMENT_STATUSES, Assignment, AssignmentKind, EscalationPolicy

CALIBRATION_ACTION = "calibration.recommendation"


@dataclass(frozen=True)
class Scope:
    """What the dashboard looks at: items of `projects` ingested on days since..until (both included, UTC),
    in the domain subtree `domain` ("" = all), on `route` ("" = all)."""

    projects: tuple[Project, ...]
    since: dt.date | None = None
    until: dt.date | None = None
    domain: str = ""
    route: str = ""

    def __post_init__(self) -> None:
        if self.route and self.route not in ALL_ROUTES:
            raise ValueError(f"route: unknown route {self.route!r}; routes are {', '.join(ALL_ROUTES)}")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since: {self.since} is after until {self.until}")

    @property
    def project_ids(self) -> list[int]:
        return [p.pk for p in self.projects]


def _domain_q(path: str, prefix: str = "") -> Q:
    path = path.strip().strip("/")
    return Q(**{f"{prefix}domain__path": path}) | Q(**{f"{prefix}domain__path__startswith": path + "/"})


def _stats_q(scope: Scope, *, route: bool = True) -> Q:
    """The scope's projects, domain and route as a filter on snapshot rows (periods are added apart)."""
    q = Q(project_id__in=scope.project_ids)
    if scope.domain:
        q &= _domain_q(scope.domain)
    if route and scope.route:
        q &= Q(route=scope.route)
    return q


@dataclass(frozen=True)
class Periods:
    """A day range split into the whole weeks that weekly rows answer and the odd days at either end."""

    day_ranges: tuple[tuple[dt.date | None, dt.date | None], ...]
    weeks: tuple[dt.date | None, dt.date | None] | None  # first and last Monday, None = open


def periods(since: dt.date | None, until: dt.date | None) -> Periods:
    """Split since..until (both included, either open) into whole ISO weeks and leftover days."""
    first = None if since is None else since + dt.timedelta(days=(7 - since.weekday()) % 7)
    last = None if until is None else until - dt.timedelta(days=(until.weekday() + 1) % 7 + 6)
    if first is not None and last is not None and first > last:
        return Periods(day_ranges=((since, until),), weeks=None)
    days = []
    if since is not None and since < first:
        days.append((since, first - dt.timedelta(days=1)))
    if until is not None and until > last + dt.timedelta(days=6):
        days.append((last + dt.timedelta(days=7), until))
    return Periods(day_ranges=tuple(days), weeks=(first, last))


def _range_q(field: str, start: dt.date | None, end: dt.date | None) -> Q:
    q = Q()
    if start is not None:
        q &= Q(**{f"{field}__gte": start})
    if end is not None:
        q &= Q(**{f"{field}__lte": end})
    return q


def _days_q(split: Periods) -> Q | None:
    if not split.day_ranges:
        return None
    q = Q()
    for start, end in split.day_ranges:
        q |= _range_q("day", start, end)
    return q


def item_stats(scope: Scope, fields: Sequence[str], *,
    days: tuple[dt.date, dt.date] | None = None) -> list[dict[str, Any]]:
    """Snapshot rows in scope with `fields`, plus their keys: project_id, day (a week's rows carry its
    Monday), domain (path or ""), route. Whole weeks come from the weekly rows. `days` overrides the
    scope's date range (the drift windows use their own)."""
    split = periods(*(days if days is not None else (scope.since, scope.until)))
    base = _stats_q(scope)
    rows: list[dict[str, Any]] = []
    keys = ("project_id", "route", *fields)
    if split.weeks is not None:
        rows += ItemWeekStats.objects.filter(base & _range_q("week", *split.weeks)).order_by("week", "id").values(
            *keys, day=F("week"), domain_path=F("domain__path")
        )
    days_q = _days_q(split)
    if days_q is not None:
        rows += ItemDayStats.objects.filter(base & days_q).order_by("day", "id").values(
            *keys, "day", domain_path=F("domain__path")
        )
    return [{**row, "domain": row.pop("domain_path") or ""} for row in rows]


def item_day_stats(scope: Scope, fields: Sequence[str], *, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """Like item_stats, but every row a day's (never a week's), over start..end: for series by day."""
    rows = ItemDayStats.objects.filter(_stats_q(scope) & _range_q("day", start, end)).order_by("day", "id").values(
        "project_id", "route", *fields, "day", domain_path=F("domain__path")
    )
    return [{**row, "domain": row.pop("domain_path") or ""} for row in rows]


def items_search(
    scope: Scope, *, external_id: str = "", status: str = "", gold: bool = False, gold_label: str = "",
    model_version: str = "",
) -> QuerySet[Item]:
    """Items in scope for the item search, newest first: `external_id` is matched as a part of it (case
    insensitive), `gold` keeps items with a gold label, `model_version` items it predicted."""
    qs = Item.objects.filter(_items_q(scope, ""))
    if external_id:
        qs = qs.filter(external_id__icontains=external_id)
    if status:
        qs = qs.filter(status=status)
    if gold or gold_label:
        qs = qs.filter(gold__isnull=False)
    if gold_label:
        qs = qs.filter(gold__label=gold_label)
    if model_version:
        qs = qs.filter(pk__in=Prediction.objects.filter(model_version=model_version).values("item_id"))
    return qs.select_related("project", "domain", "gold").order_by("-created_at", "-pk")


def _period_parts(scope: Scope, base: Q, week_model: Any, day_model: Any) -> list[QuerySet]:
    """The snapshot rows matching `base` over the scope's days: weekly rows for its whole weeks, daily
    rows for the odd days at either end (one queryset each, when there are any)."""
    split = periods(scope.since, scope.until)
    parts = []
    if split.weeks is not None:
        parts.append(week_model.objects.filter(base & _range_q("week", *split.weeks)))
    days_q = _days_q(split)
    if days_q is not None:
        parts.append(day_model.objects.filter(base & days_q))
    return parts


ANNOTATOR_SUMS = ("annotations", "items", "time_ms", "escalated_items", "disagreement_items", "gold_items",
    "gold_correct")


def annotator_stats(scope: Scope) -> list[dict[str, Any]]:
    """Per annotator and role, the sums of their snapshot rows in scope (the route filter does not apply:
    one person's work spans routes)."""
    parts = _period_parts(scope, _stats_q(scope, route=False), AnnotatorWeekStats, AnnotatorDayStats)
    totals: dict[tuple[int, str], dict[str, Any]] = {}
    for qs in parts:
        for row in qs.values("annotator_id",
            "role").annotate(**{f"sum_{n}": Sum(n) for n in ANNOTATOR_SUMS}).order_by():
            key = (row["annotator_id"], row["role"])
            total = totals.setdefault(key, {"annotator_id": key[0], "role": key[1], **dict.fromkeys(ANNOTATOR_SUMS, 0)})
            for name in ANNOTATOR_SUMS:
                total[name] += row[f"sum_{name}"]
    return [totals[key] for key in sorted(totals)]


def people(user_ids: Iterable[int]) -> dict[int, str]:
    """Display names by user id: the roster name, else the user's full name, else the username."""
    ids = set(user_ids)
    User = get_user_model()
    names = {u.pk: (u.get_full_name() or u.get_username()) for u in User.objects.filter(pk__in=ids)}
    names.update(Expert.objects.filter(user_id__in=ids).values_list("user_id", "display_name"))
    return names


def _route_q(route: str, prefix: str = "") -> Q:
    source, status = f"{prefix}final_source", f"{prefix}status"
    if route == "auto":
        return Q(**{source: FinalSource.MODEL})
    if route == "crowd":
        return Q(**{source: FinalSource.CONSENSUS}) | Q(**{source: "", status: ItemStatus.IN_CROWD_REVIEW})
    if route == "expert":
        return Q(**{f"{source}__in": [FinalSource.EXPERT, FinalSource.GOLD]}) | Q(
            **{source: "", status: ItemStatus.ESCALATED}
        )
    return Q(**{source: ""}) & ~Q(**{f"{status}__in": [ItemStatus.IN_CROWD_REVIEW, ItemStatus.ESCALATED]})


def _items_q(scope: Scope, prefix: str) -> Q:
    """The scope as a filter on items (reached through `prefix`), for the live queries."""
    q = Q(**{f"{prefix}project_id__in": scope.project_ids})
    if scope.since:
        q &= Q(**{f"{prefix}created_at__gte": dt.datetime.combine(scope.since, dt.time.min, tzinfo=dt.UTC)})
    if scope.until:
        end = dt.datetime.combine(scope.until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        q &= Q(**{f"{prefix}created_at__lt": end})
    if scope.domain:
        q &= _domain_q(scope.domain, prefix)
    if scope.route:
        q &= _route_q(scope.route, prefix)
    return q


def crowd_pair_labels(scope: Scope, annotator_ids: Sequence[int]) -> list[tuple[int, int, str, str, int]]:
    """(annotator a, annotator b, a's label, b's label, items) for a < b among `annotator_ids`, over crowd
    labels of items in scope: the contingency tables of Cohen's kappa.

    Summed from the crowd pair snapshots (whole weeks from the weekly rows), so the cost follows the
    number of annotator pairs and days in scope, not the number of labels."""
    ids = sorted(set(annotator_ids))
    if len(ids) < 2:
        return []
    base = _stats_q(scope) & Q(annotator_a_id__in=ids, annotator_b_id__in=ids)
    parts = _period_parts(scope, base, CrowdPairWeekStats, CrowdPairDayStats)
    cells: Counter[tuple[int, int, str, str]] = Counter()
    for qs in parts:
        for a, b, label_a, label_b, n in (
            qs.values_list("annotator_a_id", "annotator_b_id", "label_a", "label_b").annotate(n=Sum("pairs"))
            .order_by()
        ):
            cells[(a, b, label_a, label_b)] += n
    return [(*key, n) for key, n in sorted(cells.items())]


@dataclass(frozen=True)
class OpenWork:
    """Open expert assignments of items in scope: how many, and how many past their due time."""

    open: int
    overdue: int
    oldest_overdue_at: dt.datetime | None


def open_expert_work(scope: Scope, *, now: dt.datetime) -> OpenWork:
    # By the slot's own project (the assignment_project_open_idx index holds exactly the open slots):
    # joining every open slot to its item to test the item's project cost time in proportion to the backlog
    # of all projects. The item is joined only when the scope filters on the item's other fields.
    qs = Assignment.objects.filter(
        project_id__in=scope.project_ids, kind=AssignmentKind.EXPERT, status__in=OPEN_ASSIGNMENT_STATUSES
    )
    if scope.since or scope.until or scope.domain or scope.route:
        qs = qs.filter(_items_q(scope, "item__"))
    overdue = qs.filter(due_at__lt=now)
    oldest = overdue.order_by("due_at").values_list("due_at", flat=True).first()
    return OpenWork(open=qs.count(), overdue=overdue.count(), oldest_overdue_at=oldest)


def expert_workload() -> list[dict[str, Any]]:
    """Active experts with their open assignments (any project) and capacity, in two queries."""
    open_counts = dict(
        Assignment.objects.filter(status__in=OPEN_ASSIGNMENT_STATUSES, assignee__isnull=False)
        .values_list("assignee_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        {"user_id": user_id, "name": name, "capacity": capacity, "open": open_counts.get(user_id, 0)}
        for user_id, name, capacity in Expert.objects.filter(role=Role.EXPERT, active=True)
        .order_by("display_name", "pk")
        .values_list("user_id", "display_name", "capacity")
    ]


def domains_in_scope(scope: Scope) -> list[str]:
    """Paths of the domains that items in scope belong to (from the snapshots)."""
    ids = ItemWeekStats.objects.filter(_stats_q(scope)).values("domain_id").distinct()
    return list(Domain.objects.filter(pk__in=ids).order_by("path").values_list("path", flat=True))


def domain_choices(projects: Sequence[Project]) -> list[str]:
    """Every domain the projects' items use, with its ancestors (a filter on a parent covers its subtree)."""
    ids = ItemWeekStats.objects.filter(project_id__in=[p.pk for p in projects]).values("domain_id").distinct()
    paths = set(Domain.objects.filter(pk__in=ids).values_list("path", flat=True))
    for path in list(paths):
        parts = path.split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(paths)


def roster():
    """Active experts as availability snapshots, for coverage gaps."""
    return expert_snapshots(role=Role.EXPERT)


def policy_configs(projects: Sequence[Project]) -> dict[int, PolicyConfig]:
    """Each project's live policy fields; projects never routed get the defaults."""
    configs = {p.pk: PolicyConfig() for p in projects}
    for project_id, config in EscalationPolicy.objects.filter(
        project__in=list(projects), live_version__isnull=False
    ).values_list("project_id", "live_version__config"):
        configs[project_id] = PolicyConfig.from_dict(config)
    return configs


def calibration_recommendations(projects: Sequence[Project]) -> list[AuditEvent]:
    """The latest "calibration.recommendation" audit event of each project (the scheduled calibration
    records one when the thresholds it recommends differ from the live policy)."""
    ids = {str(p.pk): p for p in projects}
    latest: dict[str, AuditEvent] = {}
    for event in AuditEvent.objects.filter(
        action=CALIBRATION_ACTION, object_type__in=("project", "labeling.Project"), object_id__in=list(ids)
    ).order_by("at", "id"):
        latest[event.object_id] = event
    return [latest[key] for key in sorted(latest, key=lambda k: ids[k].name)]


def snapshot_state() -> SnapshotState | None:
    return SnapshotState.objects.filter(pk=1).first()


def projects_for_dashboard(*, ids: Iterable[int] | None = None) -> QuerySet[Project]:
    """The projects a dashboard may cover: all of them, or those in `ids` (core.access.dashboard_project_ids)."""
    qs = Project.objects.order_by("name", "pk")
    return qs if ids is None else qs.filter(pk__in=list(ids))
