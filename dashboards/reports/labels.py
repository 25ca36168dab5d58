"""Reports on the labels themselves: agreement between crowd annotators, time to label and accuracy on gold."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dashboards import metrics, selectors
from dashboards.reports.base import (
    ACCURACY_COLUMNS,
    ALL,
    DAILY_DAYS,
    MIN_SHARED_ITEMS,
    MIN_WEEKS,
    PAIR_ANNOTATORS,
    ReportContext,
    accuracy_row,
    class_order,
    counter_total,
    day_filter,
    domain_filter,
    domain_key,
    group_rows,
    route_order,
    sum_of,
    week_filter,
)
from dashboards.rollup import ROLE_CROWD, week_of
from dashboards.tables import ANNOTATOR, DATE, DURATION, FLOAT, INT, PERCENT, Column, Figure, Report, Table

# ------------------------------------------------------------------------------------------ agreement

AGREEMENT_FIELDS = (
    "agreement_items", "agreement_labels", "agreement_pairs", "agreement_agreeing",
    "agreement_item_sum", "agreement_disagreement_sum", "agreement_class_totals",
)


def sum_agreement(rows: Iterable[Mapping[str, Any]]) -> metrics.AgreementStats:
    total = metrics.AgreementStats()
    for row in rows:
        total = total + metrics.AgreementStats(
            items=row["agreement_items"],
            labels=row["agreement_labels"],
            pairs=row["agreement_pairs"],
            agreeing=row["agreement_agreeing"],
            item_agreement_sum=row["agreement_item_sum"],
            disagreement_sum=row["agreement_disagreement_sum"],
            class_totals=row["agreement_class_totals"],
        )
    return total


def _agreement_row(key: str, value: Any, stats: metrics.AgreementStats) -> dict[str, Any]:
    return {
        key: value,
        "items": stats.items,
        "percent_agreement": metrics.percent_agreement_from_stats(stats),
        "fleiss_kappa": metrics.fleiss_kappa_from_stats(stats),
        "krippendorff_alpha": metrics.krippendorff_alpha_from_stats(stats),
    }


AGREEMENT_COLUMNS = (
    Column("items", "Items with 2+ crowd labels", INT),
    Column("percent_agreement", "Pairwise agreement", PERCENT),
    Column("fleiss_kappa", "Fleiss' kappa", FLOAT),
    Column("krippendorff_alpha", "Krippendorff's alpha", FLOAT),
)


def agreement(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = ctx.item_stats(AGREEMENT_FIELDS)
    overall = sum_agreement(rows)
    by_domain = [{**_agreement_row("domain", k, sum_agreement(g)), "items_filter": domain_filter(k)}
                 for k, g in group_rows(rows, domain_key).items()]
    routes = group_rows(rows, lambda r: r["route"])
    by_route = [{**_agreement_row("route", r, sum_agreement(routes[r])), "items_filter": {"route": r}}
                for r in route_order(routes)]
    weeks = group_rows(rows, lambda r: week_of(r["day"]))
    by_week = [{**_agreement_row("week", k, sum_agreement(g)), "items_filter": week_filter(k)}
        for k, g in weeks.items()]
    by_day = []
    if len(weeks) < MIN_WEEKS:
        days = group_rows(ctx.day_stats(AGREEMENT_FIELDS), lambda r: r["day"])
        by_day = [{**_agreement_row("day", k, sum_agreement(g)), "items_filter": day_filter(k)}
            for k, g in days.items()]
    # Groups without an item labelled twice by the crowd (the auto route, say) have no agreement to show.
    by_domain, by_route, by_week, by_day = (
        [r for r in table if r["items"]] for table in (by_domain, by_route, by_week, by_day)
    )

    crowd = sorted(
        (r for r in ctx.annotator_stats() if r["role"] == ROLE_CROWD),
        key=lambda r: (-r["annotations"], r["annotator_id"]),
    )
    top = [r["annotator_id"] for r in crowd[:PAIR_ANNOTATORS]]
    cells: dict[tuple[int, int], list[tuple[str, str, int]]] = defaultdict(list)
    for a, b, label_a, label_b, n in selectors.crowd_pair_labels(scope, top):
        cells[(a, b)].append((label_a, label_b, n))
    classes = class_order(scope.projects, *[[la for la, _, _ in c] + [lb for _, lb, _ in c] for c in cells.values()])
    pairs = []
    for (a, b), cell in sorted(cells.items()):
        table = metrics.contingency_table(cell, classes)
        shared = int(table.sum())
        pairs.append({
            "annotator_a": a,
            "annotator_b": b,
            "shared_items": shared,
            "percent_agreement": float(np.trace(table)) / shared if shared else None,
            "cohen_kappa": metrics.cohen_kappa(table, min_items=MIN_SHARED_ITEMS),
        })
    kappas = [p["cohen_kappa"] for p in pairs if p["cohen_kappa"] is not None]

    headline = (
        Figure("percent_agreement", "Pairwise agreement", metrics.percent_agreement_from_stats(overall), PERCENT),
        Figure("fleiss_kappa", "Fleiss' kappa", metrics.fleiss_kappa_from_stats(overall)),
        Figure("krippendorff_alpha", "Krippendorff's alpha", metrics.krippendorff_alpha_from_stats(overall)),
        Figure("items", "Items with 2+ crowd labels", overall.items, INT),
        Figure("mean_cohen_kappa", "Mean Cohen's kappa (top pairs)", float(np.mean(kappas)) if kappas else None),
    )
    return Report(
        name="agreement",
        title="Agreement",
        description="How consistently the crowd labels items: pooled pairwise agreement, Fleiss' kappa and "
        "Krippendorff's alpha (nominal) over items with at least two crowd labels.",
        headline=headline,
        tables=(
            Table("agreement_by_week", "Agreement by week of ingest",
                (Column("week", "Week of", DATE), *AGREEMENT_COLUMNS), tuple(by_week)),
            Table("agreement_by_day", "Agreement by day of ingest", (Column("day", "Day", DATE), *AGREEMENT_COLUMNS),
                tuple(by_day),
                  note=f"While the history in scope spans fewer than {MIN_WEEKS} weeks: its last {DAILY_DAYS} days."),
            Table("agreement_by_domain", "Agreement by domain", (Column("domain", "Domain"), *AGREEMENT_COLUMNS),
                tuple(by_domain)),
            Table("agreement_by_route", "Agreement by route", (Column("route", "Route"), *AGREEMENT_COLUMNS),
                tuple(by_route)),
            Table(
                "agreement_pairs",
                "Cohen's kappa between the most active crowd annotators",
                (
                    Column("annotator_a", "Annotator", ANNOTATOR),
                    Column("annotator_b", "Annotator", ANNOTATOR),
                    Column("shared_items", "Shared items", INT),
                    Column("percent_agreement", "Agreement", PERCENT),
                    Column("cohen_kappa", "Cohen's kappa", FLOAT),
                ),
                tuple(pairs),
                note=f"Pairs among the {PAIR_ANNOTATORS} crowd annotators with the most labels in scope; kappa "
                f"needs at least {MIN_SHARED_ITEMS} shared items.",
            ),
        ),
    )


# ------------------------------------------------------------------------------------------ time to label


def _quantile_row(key: str, value: Any, histogram: Mapping[str, int]) -> dict[str, Any]:
    q = metrics.histogram_quantiles({int(b): n for b, n in histogram.items()}) if histogram else None
    return {
        key: value,
        "n": int(sum(histogram.values())),
        "median": q[0.5] if q else None,
        "p90": q[0.9] if q else None,
    }


QUANTILE_COLUMNS = (Column("n", "Items", INT), Column("median", "Median", DURATION),
    Column("p90", "90th percentile", DURATION))


def _sla_row(key: str, value: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    completed, met = sum_of(rows, "sla_completed"), sum_of(rows, "sla_met")
    interval = metrics.accuracy_with_interval(int(met), int(completed))
    return {
        key: value,
        "completed": completed,
        "within_sla": met,
        "share": interval.accuracy if interval else None,
        "low": interval.low if interval else None,
        "high": interval.high if interval else None,
    }


def time_to_label(ctx: ReportContext) -> Report:
    rows = ctx.item_stats(("seconds_to_label", "time_per_item", "sla_completed", "sla_met"))
    routes = group_rows(rows, lambda r: r["route"])
    by_route = [{**_quantile_row("route", ALL, counter_total(rows, "seconds_to_label")), "items_filter": {}}]
    by_route += [{**_quantile_row("route", r, counter_total(routes[r], "seconds_to_label")),
        "items_filter": {"route": r}}
                 for r in route_order(routes)]
    by_route = [r for r in by_route if r["n"]]
    per_role: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for role, histogram in row["time_per_item"].items():
            per_role[role].update(histogram)
    by_role = [_quantile_row("role", role, per_role[role]) for role in sorted(per_role)]
    domains = group_rows(rows, domain_key)
    sla = [{**_sla_row("domain", ALL, rows), "items_filter": {"route": "expert"}}]
    sla += [{**_sla_row("domain", k, g), "items_filter": {**domain_filter(k), "route": "expert"}}
        for k, g in domains.items()]
    sla = [r for r in sla if r["completed"]]
    configs = ctx.policy_configs()
    sla_hours = sorted({c.sla_hours for c in configs.values()})
    overall = by_route[0] if by_route else {"median": None, "p90": None}
    return Report(
        name="time_to_label",
        title="Time to label",
        description="From ingest to final label, by route; annotation time logged per item, by role; and "
        "whether escalated items got their expert label within the SLA.",
        headline=(
            Figure("median", "Median ingest to label", overall["median"], DURATION),
            Figure("p90", "90th percentile", overall["p90"], DURATION),
            Figure("sla_share", "Expert work within SLA", sla[0]["share"] if sla else None, PERCENT),
        ),
        tables=(
            Table("time_by_route", "Ingest to final label, by route", (Column("route", "Route"), *QUANTILE_COLUMNS),
                tuple(by_route),
                  note="Quantiles from a log histogram (24 bins per decade): within about 10% of the exact value."),
            Table("time_per_item_by_role", "Annotation time per item, by role",
                (Column("role", "Role"), *QUANTILE_COLUMNS), tuple(by_role),
                  note="Sum of the time annotators of the role logged on an item; items without logged time are "
                  "left out."),
            Table(
                "sla_compliance",
                "Expert work completed within the SLA",
                (
                    Column("domain", "Domain"),
                    Column("completed", "Escalated items done", INT),
                    Column("within_sla", "Within SLA", INT),
                    Column("share", "Share", PERCENT),
                    Column("low", "95% CI low", PERCENT),
                    Column("high", "95% CI high", PERCENT),
                ),
                tuple(sla),
                note="SLA: " + ", ".join(f"{h:g} h" for h in sla_hours) + " (the live policy's sla_hours).",
            ),
        ),
    )


# ------------------------------------------------------------------------------------------ gold accuracy


def _with_gold(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r["n"]]


def gold_accuracy(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = ctx.item_stats(("gold_items", "gold_correct", "gold_by_class"))
    overall = accuracy_row("key", ALL, sum_of(rows, "gold_correct"), sum_of(rows, "gold_items"))
    routes = group_rows(rows, lambda r: r["route"])
    by_route = [{**accuracy_row("route", r, sum_of(routes[r], "gold_correct"), sum_of(routes[r], "gold_items")),
                 "items_filter": {"route": r, "gold": "1"}} for r in route_order(routes)]
    by_domain = [{**accuracy_row("domain", k, sum_of(g, "gold_correct"), sum_of(g, "gold_items")),
                  "items_filter": {**domain_filter(k), "gold": "1"}} for k, g in group_rows(rows, domain_key).items()]
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        for label, (n, correct) in row["gold_by_class"].items():
            per_class[label][0] += n
            per_class[label][1] += correct
    by_class = [{**accuracy_row("label", c, per_class[c][1], per_class[c][0]), "items_filter": {"gold_label": c}}
                for c in class_order(scope.projects, per_class) if c in per_class]
    by_annotator = [
        {**accuracy_row("annotator", r["annotator_id"], r["gold_correct"], r["gold_items"]), "role": r["role"]}
        for r in ctx.annotator_stats()
        if r["gold_items"]
    ]
    by_annotator.sort(key=lambda r: (-(r["accuracy"] or 0), -r["n"], r["annotator"]))
    return Report(
        name="gold_accuracy",
        title="Accuracy on gold",
        description="Final labels (and each annotator's labels) compared with gold labels, with 95% Wilson intervals.",
        headline=(
            Figure("accuracy", "Final labels correct on gold", overall["accuracy"], PERCENT,
                   note=f"n = {overall['n']}" + (
                   f", 95% CI {overall['low']:.0%}–{overall['high']:.0%}" if overall["n"] else "")),
            Figure("n", "Gold items labelled", overall["n"], INT),
        ),
        tables=(
            Table("gold_by_route", "By route", (Column("route", "Route"), *ACCURACY_COLUMNS),
                tuple(_with_gold(by_route))),
            Table("gold_by_domain", "By domain", (Column("domain", "Domain"), *ACCURACY_COLUMNS),
                tuple(_with_gold(by_domain))),
            Table("gold_by_class", "By gold class (recall)", (Column("label", "Gold class"), *ACCURACY_COLUMNS),
                tuple(by_class)),
            Table(
                "gold_by_annotator",
                "By annotator",
                (Column("annotator", "Annotator", ANNOTATOR), Column("role", "Role"),
                 Column("n", "Labels on gold items", INT), *ACCURACY_COLUMNS[1:]),
                tuple(by_annotator),
                note="Each label an annotator gave on a gold item counts once (the route filter does not apply).",
            ),
        ),
    )
