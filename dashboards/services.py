"""Writes of the dashboards app: refreshing the pre-computed snapshots (ItemDayStats, AnnotatorDayStats and
their weekly sums).

A refresh finds the (project, ingest day) partitions whose items changed since the last refresh, reads
their items in batches of whole days (a fixed number of queries per batch, counting done by GROUP BY in
SQL), turns them into `rollup.ItemFacts` and replaces the partitions' rows. What marks a partition
changed: an item row updated (routing stamps `updated_at` whenever it sets a status or final label), a
routing decision, a gold label or a review created. Every label submitted through the services is
followed by a routing decision, so new annotations are caught too. Two things are not caught, and the
nightly full rebuild repairs them: an item deleted on its own, and a gold label changed in place.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from dashboards.models import (
    AnnotatorDayStats,
    AnnotatorWeekStats,
    CrowdPairDayStats,
    CrowdPairWeekStats,
    ItemDayStats,
    ItemWeekStats,
    SnapshotState,
)
from dashboards.rollup import (
    ANNOTATOR_COUNTERS,
    ITEM_COUNTERS,
    ITEM_FLOATS,
    ITEM_JSON,
    ItemFacts,
    LabelFact,
    PredictionFact,
    partition_rows,
    week_of,
    week_rows,
)
from labeling.models import Annotation, GoldLabel, Item, Prediction, Project, Review
from routing.engine.types import Outcome
from routing.models import Assignment, AssignmentKind, AssignmentStatus, RoutingDecision

logger = logging.getLogger(__name__)

# How far before a refresh's start the next one looks again, so that a transaction that stamped its rows
# earlier but committed after the refresh read them is still picked up. On PostgreSQL the refresh knows
# which transactions were open when it read (_open_since): back to the oldest one's start, less CLOCK_SKEW
# for hosts whose clocks differ (the stamps are the web and worker hosts' `now`, the start the database's).
# Elsewhere a fixed REFRESH_OVERLAP, enough for any transaction of this application. The refresh costs the
# items of every day changed since then, so at scale the shorter look-back is most of its cost.
REFRESH_OVERLAP = dt.timedelta(minutes=10)
CLOCK_SKEW = dt.timedelta(minutes=1)
# Items read per batch (whole days are kept together, so a batch can be larger when one day is).
BATCH_ITEMS = 20_000
INSERT_BATCH = 2_000

Partition = tuple[int, dt.date]


@dataclass(frozen=True)
class RefreshResult:
    full: bool
    partitions: int
    items: int
    refreshed_at: dt.datetime


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _days_q(days: Sequence[dt.date], prefix: str = "") -> Q:
    """created_at within any of `days` (UTC), as ranges over runs of consecutive days so the
    (project, created_at) index serves it."""
    q = Q()
    ordered = sorted(set(days))
    for _, run in itertools.groupby(enumerate(ordered), key=lambda pair: pair[1].toordinal() - pair[0]):
        run_days = [d for _, d in run]
        start, _ = _day_bounds(run_days[0])
        _, end = _day_bounds(run_days[-1])
        q |= Q(**{f"{prefix}created_at__gte": start, f"{prefix}created_at__lt": end})
    return q


def changed_partitions(*, since: dt.datetime) -> set[Partition]:
    """(project id, ingest day) of items touched at or after `since`."""
    found: set[Partition] = set()
    sources = (
        (Item.objects.filter(updated_at__gte=since), ""),
        (RoutingDecision.objects.filter(created_at__gte=since), "item__"),
        (GoldLabel.objects.filter(created_at__gte=since), "item__"),
        (Review.objects.filter(created_at__gte=since), "item__"),
    )
    for qs, prefix in sources:
        found.update(
            qs.values_list(f"{prefix}project_id", TruncDate(f"{prefix}created_at", tzinfo=dt.UTC)).distinct()
        )
    return found


def _all_partitions() -> set[Partition]:
    return set(Item.objects.values_list("project_id", TruncDate("created_at", tzinfo=dt.UTC)).distinct())


def _batches(partitions: Iterable[Partition]) -> Iterator[tuple[int, list[dt.date], int]]:
    """(project id, days, items) batches of whole days, about BATCH_ITEMS items each."""
    by_project: dict[int, set[dt.date]] = defaultdict(set)
    for project_id, day in partitions:
        by_project[project_id].add(day)
    for project_id, days in sorted(by_project.items()):
        sizes = dict(
            Item.objects.filter(_days_q(list(days)), project_id=project_id)
            .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
            .values_list("day")
            .annotate(n=Count("id"))
            .order_by()
        )
        batch: list[dt.date] = []
        total = 0
        for day in sorted(days):
            batch.append(day)
            total += sizes.get(day, 0)
            if total >= BATCH_ITEMS:
                yield project_id, batch, total
                batch, total = [], 0
        if batch:
            yield project_id, batch, total


def _top(probabilities: dict[str, float]) -> tuple[str, float]:
    label = max(probabilities, key=lambda k: (probabilities[k], k))
    return label, float(probabilities[label])


def _posterior_top(posterior: dict[str, float] | None) -> str | None:
    return _top(posterior)[0] if posterior else None


def item_facts(*, project_id: int, days: Sequence[dt.date]) -> list[ItemFacts]:
    """Facts of the project's items ingested on `days`, in six queries whatever their number."""
    in_days = _days_q(days)
    items = list(
        Item.objects.filter(in_days, project_id=project_id).values_list(
            "id", "domain_id", "status", "final_label", "final_source", "created_at", "labeled_at"
        )
    )
    if not items:
        return []
    related = Q(item__project_id=project_id) & _days_q(days, prefix="item__")

    labels: dict[int, list[LabelFact]] = defaultdict(list)
    for item_id, annotator_id, role, label, count, time_ms, timed in (
        Annotation.objects.filter(related)
        .values_list("item_id", "annotator_id", "role", "label")
        .annotate(n=Count("id"), t=Sum("time_spent_ms"), timed=Count("time_spent_ms"))
        .order_by()
    ):
        labels[item_id].append(
            LabelFact(annotator_id=annotator_id, role=role, label=label, count=count,
                time_ms=time_ms if timed else None)
        )
    gold = dict(GoldLabel.objects.filter(related).values_list("item_id", "label"))
    first_escalation: dict[int, str | None] = {}
    for item_id, posterior in (
        RoutingDecision.objects.filter(related, outcome=Outcome.EXPERT.value)
        .order_by("item_id", "id")
        .values_list("item_id", "posterior")
    ):
        if item_id not in first_escalation:
            first_escalation[item_id] = _posterior_top(posterior)
    predictions: dict[int, list[PredictionFact]] = defaultdict(list)
    for item_id, version, probabilities in Prediction.objects.filter(related).values_list(
        "item_id", "model_version", "probabilities"
    ):
        if probabilities:
            label, p = _top(probabilities)
            predictions[item_id].append(PredictionFact(model_version=version, top_label=label, top_probability=p))
    sla: dict[int, bool] = {}
    for item_id, completed_at, due_at in Assignment.objects.filter(
        related, kind=AssignmentKind.EXPERT, status=AssignmentStatus.COMPLETED, due_at__isnull=False,
        completed_at__isnull=False,
    ).values_list("item_id", "completed_at", "due_at"):
        sla[item_id] = sla.get(item_id, True) and completed_at <= due_at

    facts = []
    for item_id, domain_id, status, final_label, final_source, created_at, labeled_at in items:
        facts.append(
            ItemFacts(
                project_id=project_id,
                day=created_at.astimezone(dt.UTC).date(),
                domain_id=domain_id,
                status=status,
                final_label=final_label,
                final_source=final_source,
                seconds_to_label=(
                    max((labeled_at - created_at).total_seconds(), 0.0) if labeled_at and final_label else None
                ),
                labels=tuple(labels.get(item_id, ())),
                gold=gold.get(item_id),
                escalated=item_id in first_escalation,
                pre_escalation_label=first_escalation.get(item_id),
                predictions=tuple(predictions.get(item_id, ())),
                sla_met=sla.get(item_id),
            )
        )
    return facts


def _replace(project_id: int, days: Sequence[dt.date], classes: Sequence[str]) -> int:
    facts = item_facts(project_id=project_id, days=days)
    rows = partition_rows(facts, {project_id: classes})
    ItemDayStats.objects.filter(project_id=project_id, day__in=days).delete()
    AnnotatorDayStats.objects.filter(project_id=project_id, day__in=days).delete()
    CrowdPairDayStats.objects.filter(project_id=project_id, day__in=days).delete()
    ItemDayStats.objects.bulk_create([ItemDayStats(**row) for row in rows.items], batch_size=INSERT_BATCH)
    AnnotatorDayStats.objects.bulk_create(
        [AnnotatorDayStats(**row) for row in rows.annotators], batch_size=INSERT_BATCH
    )
    CrowdPairDayStats.objects.bulk_create(
        [CrowdPairDayStats(**row) for row in rows.crowd_pairs], batch_size=INSERT_BATCH
    )
    return len(facts)


def _replace_weeks(project_id: int, weeks: Iterable[dt.date]) -> None:
    """Recompute the week rows of `weeks` from their day rows."""
    weeks = sorted(set(weeks))
    if not weeks:
        return
    in_weeks = Q()
    for week in weeks:
        in_weeks |= Q(day__gte=week, day__lt=week + dt.timedelta(days=7))
    day_rows = ItemDayStats.objects.filter(in_weeks, project_id=project_id).values(
        "project_id", "day", "domain_id", "route", *ITEM_COUNTERS, *ITEM_FLOATS, *ITEM_JSON
    )
    ItemWeekStats.objects.filter(project_id=project_id, week__in=weeks).delete()
    ItemWeekStats.objects.bulk_create([ItemWeekStats(**row) for row in week_rows(day_rows)], batch_size=INSERT_BATCH)
    AnnotatorWeekStats.objects.filter(project_id=project_id, week__in=weeks).delete()
    annotator_weeks = (
        AnnotatorDayStats.objects.filter(in_weeks, project_id=project_id)
        .annotate(week=TruncWeek("day"))
        .values("project_id", "week", "domain_id", "annotator_id", "role")
        .annotate(**{f"total_{name}": Sum(name) for name in ANNOTATOR_COUNTERS})
        .order_by()
    )
    AnnotatorWeekStats.objects.bulk_create(
        [
            AnnotatorWeekStats(
                project_id=row["project_id"], week=row["week"], domain_id=row["domain_id"],
                annotator_id=row["annotator_id"], role=row["role"],
                **{name: row[f"total_{name}"] for name in ANNOTATOR_COUNTERS},
            )
            for row in annotator_weeks
        ],
        batch_size=INSERT_BATCH,
    )
    CrowdPairWeekStats.objects.filter(project_id=project_id, week__in=weeks).delete()
    pair_keys = ("project_id", "domain_id", "route", "annotator_a_id", "annotator_b_id", "label_a", "label_b")
    pair_weeks = (
        CrowdPairDayStats.objects.filter(in_weeks, project_id=project_id)
        .annotate(week=TruncWeek("day"))
        .values("week", *pair_keys)
        .annotate(total=Sum("pairs"))
        .order_by()
    )
    CrowdPairWeekStats.objects.bulk_create(
        [CrowdPairWeekStats(week=row["week"], pairs=row["total"], **{k: row[k] for k in pair_keys})
         for row in pair_weeks],
        batch_size=INSERT_BATCH,
    )


def _open_since() -> tuple[bool, dt.datetime | None]:
    """(whether the database can tell, the start of the oldest transaction open in it on another connection
    or None when there is none). A row stamped inside a transaction is stamped after it began, so no row
    hidden from a read made now is older. PostgreSQL hides other roles' sessions from a role without
    pg_read_all_stats (their state reads NULL): then it cannot tell, and the fixed overlap applies."""
    if connection.vendor != "postgresql":
        return False, None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(xact_start), bool_or(state IS NULL) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        oldest, hidden = cursor.fetchone()
    return not hidden, oldest


def next_changes_since(*, now: dt.datetime, open_since: dt.datetime | None, known: bool) -> dt.datetime:
    """Where the next refresh starts looking for changes: back to the oldest transaction open when this one
    read (`open_since`, None for none), when the database could tell (`known`); else REFRESH_OVERLAP."""
    if not known:
        return now - REFRESH_OVERLAP
    return min(now, open_since or now) - CLOCK_SKEW


def snapshots_refresh(*, full: bool = False, now: dt.datetime | None = None) -> RefreshResult:
    """Bring the snapshots up to date: the partitions changed since the last refresh, or all (`full`, and
    the first time). Runs in one transaction holding the SnapshotState row, so refreshes never overlap
    and the page never sees a partition half-replaced."""
    now = now or timezone.now()
    with transaction.atomic():
        SnapshotState.objects.get_or_create(pk=1)
        state = SnapshotState.objects.select_for_update().get(pk=1)
        # Before anything is read: whatever is still uncommitted now is looked for again next time.
        known, open_since = _open_since()
        full = full or state.changes_since is None
        if full:
            partitions = _all_partitions()
            # Partitions of projects or days that no longer have items.
            stale = set(ItemDayStats.objects.values_list("project_id", "day").distinct()) - partitions
            for project_id, day in stale:
                ItemDayStats.objects.filter(project_id=project_id, day=day).delete()
                AnnotatorDayStats.objects.filter(project_id=project_id, day=day).delete()
                CrowdPairDayStats.objects.filter(project_id=project_id, day=day).delete()
            stale_weeks = set(ItemWeekStats.objects.values_list("project_id", "week").distinct()) - {
                (project_id, week_of(day)) for project_id, day in partitions
            }
            for project_id, week in stale_weeks:
                ItemWeekStats.objects.filter(project_id=project_id, week=week).delete()
                AnnotatorWeekStats.objects.filter(project_id=project_id, week=week).delete()
                CrowdPairWeekStats.objects.filter(project_id=project_id, week=week).delete()
        else:
            partitions = changed_partitions(since=state.changes_since)
        classes = {p.pk: p.class_names for p in Project.objects.filter(pk__in={p for p, _ in partitions})}
        items = 0
        weeks: dict[int, set[dt.date]] = defaultdict(set)
        for project_id, days, _ in _batches(partitions):
            items += _replace(project_id, days, classes.get(project_id, ()))
            weeks[project_id].update(week_of(day) for day in days)
        for project_id, project_weeks in weeks.items():
            _replace_weeks(project_id, project_weeks)
        state.changes_since = next_changes_since(now=now, open_since=open_since, known=known)
        state.refreshed_at = now
        if full:
            state.full_refreshed_at = now
        state.save()
    logger.info("dashboard snapshots refreshed: %s partitions, %s items (full=%s)", len(partitions), items, full)
    return RefreshResult(full=full, partitions=len(partitions), items=items, refreshed_at=now)
