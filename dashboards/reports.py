"""The dashboard's metrics: each report reads snapshot rows (and a few live figures) through
dashboards.selectors, sums them, and computes its statistics with the pure dashboards.metrics.

Every report is a function `(ReportContext) -> tables.Report`; REPORTS names them for the page, the CSV
download and the JSON API, and `build` runs several over one scope. What "route", "escalated" and
"disagreement item" mean is defined in dashboards.rollup.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from django.conf import settings

from dashboards import metrics, selectors
from dashboards.rollup import ALL_ROUTES, CONFIDENCE_BINS, ROLE_CROWD, week_of
from dashboards.selectors import Scope
from dashboards.tables import (
    ANNOTATOR,
    DATE,
    DURATION,
    FLOAT,
    INT,
    PERCENT,
    Column,
    Figure,
    Report,
    Table,
)
from experts.availability import coverage_gaps
from labeling.models import ItemStatus

ALL = "All"
NO_DOMAIN = "(no domain)"
# Cohen's kappa is shown for pairs among this many of the most active crowd annotators in scope.
PAIR_ANNOTATORS = 8
MIN_SHARED_ITEMS = 10
DRIFT_RECENT_DAYS = 7
DRIFT_REFERENCE_DAYS = 28
DRIFT_PSI_ALERT_DEFAULT = 0.2
COVERAGE_HOURS = 7 * 24
OPEN_STATUSES = (ItemStatus.NEW, ItemStatus.ROUTED, ItemStatus.IN_CROWD_REVIEW, ItemStatus.ESCALATED)


class ReportContext:
    """One request's scope and clock, with the selector calls several reports share memoised for the
    request (never across requests: snapshots change every minute)."""

    def __init__(self, scope: Scope, *, now: dt.datetime):
        self.scope = scope
        self.now = now
        self._annotators: list[dict[str, Any]] | None = None
        self._configs: dict[int, Any] | None = None

    def item_stats(self, fields: Sequence[str], *, days: tuple[dt.date, dt.date] | None = None) -> list[dict[str, Any]]:
        return selectors.item_stats(self.scope, fields, days=days)

    def annotator_stats(self) -> list[dict[str, Any]]:
        if self._annotators is None:
            self._annotators = selectors.annotator_stats(self.scope)
        return self._annotators

    def policy_configs(self) -> dict[int, Any]:
        if self._configs is None:
            self._configs = selectors.policy_configs(self.scope.projects)
        return self._configs


def drift_alert_level() -> float:
    """settings.DRIFT_PSI_ALERT (default 0.2), read on every call so tests and deployments can change it."""
    return float(getattr(settings, "DRIFT_PSI_ALERT", DRIFT_PSI_ALERT_DEFAULT))


def _domain_key(row: Mapping[str, Any]) -> str:
    return row["domain"] or NO_DOMAIN


def _group(rows: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]) -> dict[Any, list]:
    groups: dict[Any, list] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0])))


def _route_order(groups: Mapping[str, Any]) -> list[str]:
    return [r for r in ALL_ROUTES if r in groups]


def _sum(rows: Iterable[Mapping[str, Any]], name: str) -> int | float:
    return sum(row[name] for row in rows)


def _counter(rows: Iterable[Mapping[str, Any]], name: str) -> Counter:
    total: Counter = Counter()
    for row in rows:
        total.update(row[name])
    return total


def _accuracy_row(key: str, value: Any, correct: int, n: int) -> dict[str, Any]:
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


def _classes(scope: Scope, *seen: Iterable[str]) -> list[str]:
    """Class order for tables: the projects' classes in their order, then any other label seen."""
    order: list[str] = []
    for project in scope.projects:
        order += [c for c in project.class_names if c not in order]
    extra = set().union(*[set(s) for s in seen]) - set(order) if seen else set()
    return order + sorted(extra)


# ------------------------------------------------------------------------------------------ agreement

AGREEMENT_FIELDS = (
    "agreement_items", "agreement_labels", "agreement_pairs", "agreement_agreeing",
    "agreement_item_sum", "agreement_disagreement_sum", "agreement_class_totals",
)


def _agreement(rows: Iterable[Mapping[str, Any]]) -> metrics.AgreementStats:
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
    overall = _agreement(rows)
    by_domain = [_agreement_row("domain", k, _agreement(g)) for k, g in _group(rows, _domain_key).items()]
    routes = _group(rows, lambda r: r["route"])
    by_route = [_agreement_row("route", r, _agreement(routes[r])) for r in _route_order(routes)]
    by_week = [_agreement_row("week", k, _agreement(g)) for k, g in _group(rows, lambda r: week_of(r["day"])).items()]
    # Groups without an item labelled twice by the crowd (the auto route, say) have no agreement to show.
    by_domain, by_route, by_week = ([r for r in table if r["items"]] for table in (by_domain, by_route, by_week))

    crowd = sorted(
        (r for r in ctx.annotator_stats() if r["role"] == ROLE_CROWD),
        key=lambda r: (-r["annotations"], r["annotator_id"]),
    )
    top = [r["annotator_id"] for r in crowd[:PAIR_ANNOTATORS]]
    cells: dict[tuple[int, int], list[tuple[str, str, int]]] = defaultdict(list)
    for a, b, label_a, label_b, n in selectors.crowd_pair_labels(scope, top):
        cells[(a, b)].append((label_a, label_b, n))
    classes = _classes(scope, *[[la for la, _, _ in c] + [lb for _, lb, _ in c] for c in cells.values()])
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
    completed, met = _sum(rows, "sla_completed"), _sum(rows, "sla_met")
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
    routes = _group(rows, lambda r: r["route"])
    by_route = [_quantile_row("route", ALL, _counter(rows, "seconds_to_label"))]
    by_route += [_quantile_row("route", r, _counter(routes[r], "seconds_to_label")) for r in _route_order(routes)]
    by_route = [r for r in by_route if r["n"]]
    per_role: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        for role, histogram in row["time_per_item"].items():
            per_role[role].update(histogram)
    by_role = [_quantile_row("role", role, per_role[role]) for role in sorted(per_role)]
    domains = _group(rows, _domain_key)
    sla = [_sla_row("domain", ALL, rows)] + [_sla_row("domain", k, g) for k, g in domains.items()]
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
                  note="Sum of the time annotators of the role logged on an item; "
                       "items without logged time are left out."),
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
    overall = _accuracy_row("key", ALL, _sum(rows, "gold_correct"), _sum(rows, "gold_items"))
    routes = _group(rows, lambda r: r["route"])
    by_route = [_accuracy_row("route", r, _sum(routes[r], "gold_correct"), _sum(routes[r], "gold_items"))
        for r in _route_order(routes)]
    by_domain = [_accuracy_row("domain", k, _sum(g, "gold_correct"), _sum(g, "gold_items"))
        for k, g in _group(rows, _domain_key).items()]
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        for label, (n, correct) in row["gold_by_class"].items():
            per_class[label][0] += n
            per_class[label][1] += correct
    by_class = [_accuracy_row("label", c, per_class[c][1], per_class[c][0]) for c in _classes(scope, per_class)
        if c in per_class]
    by_annotator = [
        {**_accuracy_row("annotator", r["annotator_id"], r["gold_correct"], r["gold_items"]), "role": r["role"]}
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


# ------------------------------------------------------------------------------------------ escalation value

ESCALATION_FIELDS = (
    "escalated", "escalation_labelled", "escalation_compared", "escalation_agreed", "escalation_with_gold",
    "escalation_pre_correct", "escalation_expert_correct", "escalation_fixed", "escalation_broken",
    "labeled", "crowd_labels", "expert_labels", "gold_items", "gold_correct", "gold_crowd_labels", "gold_expert_labels",
)


def escalation_value(ctx: ReportContext) -> Report:
    rows = ctx.item_stats(ESCALATION_FIELDS)
    s = {name: _sum(rows, name) for name in ESCALATION_FIELDS}
    accuracy = (
        _accuracy_row("label", "Before escalation (model or crowd)", s["escalation_pre_correct"],
            s["escalation_with_gold"]),
        _accuracy_row("label", "Expert", s["escalation_expert_correct"], s["escalation_with_gold"]),
    )
    agreement_share = s["escalation_agreed"] / s["escalation_compared"] if s["escalation_compared"] else None
    summary = (
        {"measure": "Escalated items", "value": s["escalated"]},
        {"measure": "Escalated items an expert labelled", "value": s["escalation_labelled"]},
        {"measure": "Pre-escalation label equals the expert's", "value": s["escalation_agreed"]},
        {"measure": "Compared (had a pre-escalation label)", "value": s["escalation_compared"]},
        {"measure": "With gold", "value": s["escalation_with_gold"]},
        {"measure": "Fixed by the expert (wrong before, right after)", "value": s["escalation_fixed"]},
        {"measure": "Broken by the expert (right before, wrong after)", "value": s["escalation_broken"]},
    )

    configs = ctx.policy_configs()
    cost_rows = []
    routes = _group(rows, lambda r: r["route"])
    for route in _route_order(routes):
        group = routes[route]
        cost = gold_cost = 0.0
        for row in group:
            expert_cost = configs[row["project_id"]].expert_cost
            cost += row["crowd_labels"] + row["expert_labels"] * expert_cost
            gold_cost += row["gold_crowd_labels"] + row["gold_expert_labels"] * expert_cost
        labeled, gold_correct = _sum(group, "labeled"), _sum(group, "gold_correct")
        cost_rows.append({
            "route": route,
            "labeled": labeled,
            "crowd_labels": _sum(group, "crowd_labels"),
            "expert_labels": _sum(group, "expert_labels"),
            "cost": cost,
            "cost_per_label": cost / labeled if labeled else None,
            "gold_items": _sum(group, "gold_items"),
            "gold_correct": gold_correct,
            "cost_per_correct": metrics.cost_per_correct(gold_cost, int(gold_correct)),
        })
    expert_costs = sorted({c.expert_cost for c in configs.values()})
    return Report(
        name="escalation_value",
        title="Value of escalation",
        description="On escalated items with gold: was the label before escalation (the model's or the crowd's) "
        "right, and the expert's? And what a correct label costs on each route.",
        headline=(
            Figure("pre_accuracy", "Correct before escalation", accuracy[0]["accuracy"], PERCENT,
                note=f"n = {accuracy[0]['n']}"),
            Figure("expert_accuracy", "Correct after the expert", accuracy[1]["accuracy"], PERCENT,
                note=f"n = {accuracy[1]['n']}"),
            Figure("agreement", "Pre-escalation label kept by the expert", agreement_share, PERCENT),
        ),
        tables=(
            Table("escalation_accuracy", "Escalated items with gold", (Column("label", "Label"), *ACCURACY_COLUMNS),
                accuracy),
            Table("escalation_summary", "Escalations", (Column("measure", "Measure"), Column("value", "Items", INT)),
                summary),
            Table(
                "cost_by_route",
                "Cost per correct label, by route",
                (
                    Column("route", "Route"),
                    Column("labeled", "Labelled items", INT),
                    Column("crowd_labels", "Crowd labels", INT),
                    Column("expert_labels", "Expert labels", INT),
                    Column("cost", "Cost (units)", FLOAT),
                    Column("cost_per_label", "Cost per labelled item", FLOAT),
                    Column("gold_items", "Gold items", INT),
                    Column("gold_correct", "Correct on gold", INT),
                    Column("cost_per_correct", "Cost per correct label (gold)", FLOAT),
                ),
                tuple(cost_rows),
                note="A crowd label costs 1 unit, an expert or reviewer label the policy's expert_cost ("
                + ", ".join(f"{c:g}" for c in expert_costs) + "). Cost per correct label: the cost of the labels on "
                "gold items over the gold items whose final label is right.",
            ),
        ),
    )


# ------------------------------------------------------------------------------------------ flow


def flow(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = ctx.item_stats(("items", "escalated", "statuses"))
    statuses = _counter(rows, "statuses")
    status_rows = tuple({"status": status, "items": statuses[status]}
        for status in sorted(statuses, key=lambda s: -statuses[s]))
    by_week = []
    for week, group in _group(rows, lambda r: week_of(r["day"])).items():
        items, escalated = _sum(group, "items"), _sum(group, "escalated")
        by_week.append({"week": week, "items": items, "escalated": escalated,
            "rate": escalated / items if items else None})
    total_items, total_escalated = _sum(rows, "items"), _sum(rows, "escalated")
    backlog = sum(statuses[s] for s in OPEN_STATUSES)
    work = selectors.open_expert_work(scope, now=ctx.now)
    backlog_rows = (
        {"measure": "Open items (not yet labelled)", "value": backlog},
        {"measure": "Open expert assignments", "value": work.open},
        {"measure": "Overdue expert assignments", "value": work.overdue},
        {"measure": "Oldest overdue since",
            "value": work.oldest_overdue_at.isoformat(timespec="minutes") if work.oldest_overdue_at else ""},
    )
    utilisation = [
        {**e, "annotator": e["user_id"], "utilisation": e["open"] / e["capacity"] if e["capacity"] else None}
        for e in selectors.expert_workload()
    ]
    roster = selectors.roster()
    gaps = []
    for domain in [d for d in selectors.domains_in_scope(scope)]:
        uncovered = coverage_gaps(roster, domain, ctx.now, hours=COVERAGE_HOURS)
        gaps.append({
            "domain": domain,
            "uncovered_hours": len(uncovered),
            "covered_share": 1 - len(uncovered) / COVERAGE_HOURS,
            "next_gap": uncovered[0].isoformat(timespec="minutes") if uncovered else "",
        })
    return Report(
        name="flow",
        title="Flow",
        description="Where items are now, how many get escalated, the expert backlog and whether the roster "
                    "covers the next week.",
        headline=(
            Figure("escalation_rate", "Escalation rate", total_escalated / total_items if total_items else None,
                PERCENT),
            Figure("backlog", "Open items", backlog, INT),
            Figure("overdue", "Overdue expert assignments", work.overdue, INT),
        ),
        tables=(
            Table("status_counts", "Items by status", (Column("status", "Status"), Column("items", "Items", INT)),
                status_rows),
            Table("escalation_by_week", "Escalation rate by week of ingest",
                  (Column("week", "Week of", DATE), Column("items", "Items", INT),
                      Column("escalated", "Escalated", INT),
                   Column("rate", "Escalation rate", PERCENT)), tuple(by_week)),
            Table("backlog", "Backlog now", (Column("measure", "Measure"), Column("value", "Value")), backlog_rows,
                  note="Assignments as they are now, for items in scope."),
            Table("expert_utilisation", "Expert utilisation now",
                  (Column("annotator", "Expert", ANNOTATOR), Column("open", "Open assignments", INT),
                   Column("capacity", "Capacity", INT), Column("utilisation", "Utilisation", PERCENT)),
                  tuple(utilisation), note="Open assignments in every project over the expert's capacity."),
            Table("coverage_gaps", "Expert coverage, next 7 days",
                  (Column("domain", "Domain"),
                      Column("uncovered_hours", "Hours without a qualified expert on shift", INT),
                   Column("covered_share", "Covered", PERCENT), Column("next_gap", "Next gap starts (UTC)")),
                  tuple(gaps), note="From the roster's shifts and time off; domains of the items in scope."),
        ),
    )


# ------------------------------------------------------------------------------------------ model quality


def _sum_confusion(cells: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, Counter]:
    total: dict[str, Counter] = defaultdict(Counter)
    for cell in cells:
        for true, predicted in cell.items():
            total[true].update(predicted)
    return total


def model_quality(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = ctx.item_stats(("model_versions",))
    versions: dict[str, dict[str, list]] = defaultdict(lambda: {"gold": [], "expert": []})
    for row in rows:
        for version, cell in row["model_versions"].items():
            versions[version]["gold"].append(cell["gold"])
            versions[version]["expert"].append(cell["expert"])
    per_class, summary = [], []
    for version in sorted(versions):
        for reference in ("gold", "expert"):
            confusion = _sum_confusion(versions[version][reference])
            seen = set(confusion) | {p for c in confusion.values() for p in c}
            classes = _classes(scope, seen)
            table = metrics.contingency_table(
                [(t, p, n) for t, c in confusion.items() for p, n in c.items()], classes
            )
            report = metrics.per_class_prf(table, classes)
            if report is None:
                continue
            summary.append({
                "model_version": version, "reference": reference, "n": report.n, "accuracy": report.accuracy,
                "macro_precision": report.macro_precision, "macro_recall": report.macro_recall,
                "macro_f1": report.macro_f1,
            })
            per_class += [
                {"model_version": version, "reference": reference, "label": c.label, "precision": c.precision,
                 "recall": c.recall, "f1": c.f1, "support": c.support, "predicted": c.predicted}
                for c in report.per_class
                if c.support or c.predicted
            ]
    gold = [s for s in summary if s["reference"] == "gold"]
    latest = gold[-1] if gold else None
    return Report(
        name="model_quality",
        title="Model quality",
        description="Each model version's top predicted label against gold labels and against expert labels.",
        headline=(
            Figure("macro_f1", f"Macro F1 on gold ({latest['model_version']})" if latest else "Macro F1 on gold",
                   latest["macro_f1"] if latest else None),
            Figure("accuracy", "Accuracy on gold", latest["accuracy"] if latest else None, PERCENT),
        ),
        tables=(
            Table("model_summary", "By model version",
                  (Column("model_version", "Model version"), Column("reference", "Against"), Column("n", "Items", INT),
                   Column("accuracy", "Accuracy", PERCENT), Column("macro_precision", "Macro precision", FLOAT),
                   Column("macro_recall", "Macro recall", FLOAT), Column("macro_f1", "Macro F1", FLOAT)),
                       tuple(summary)),
            Table("model_by_class", "By class",
                  (Column("model_version", "Model version"), Column("reference", "Against"), Column("label", "Class"),
                   Column("precision", "Precision", FLOAT), Column("recall", "Recall", FLOAT),
                   Column("f1", "F1", FLOAT),
                   Column("support", "Support", INT), Column("predicted", "Predicted", INT)), tuple(per_class)),
        ),
    )


# ------------------------------------------------------------------------------------------ effort


def effort(ctx: ReportContext) -> Report:
    rows = []
    for r in ctx.annotator_stats():
        rows.append({
            "annotator": r["annotator_id"],
            "role": r["role"],
            "items": r["items"],
            "annotations": r["annotations"],
            "hours": r["time_ms"] / 3_600_000,
            "seconds_per_item": r["time_ms"] / 1000 / r["items"] if r["items"] else None,
            "escalated_items": r["escalated_items"],
            "disagreement_items": r["disagreement_items"],
            "work_units": metrics.work_units(r["items"], r["escalated_items"], r["disagreement_items"]),
        })
    rows.sort(key=lambda r: (-r["work_units"], r["annotator"]))
    weights = metrics.DEFAULT_WORK_UNIT_WEIGHTS
    return Report(
        name="effort",
        title="Effort",
        description="Work per annotator, weighted by difficulty: escalated and disagreement items count more.",
        headline=(
            Figure("people", "People who labelled", len({r["annotator"] for r in rows}), INT),
            Figure("time_logged", "Time logged", sum(r["hours"] for r in rows) * 3600, DURATION),
            Figure("work_units", "Work units", sum(r["work_units"] for r in rows)),
        ),
        tables=(
            Table("effort", "Effort by annotator",
                  (Column("annotator", "Annotator", ANNOTATOR), Column("role", "Role"), Column("items", "Items", INT),
                   Column("annotations", "Labels", INT), Column("hours", "Hours logged", FLOAT),
                   Column("seconds_per_item", "Time per item", DURATION),
                   Column("escalated_items", "Escalated items", INT),
                   Column("disagreement_items", "Disagreement items", INT), Column("work_units", "Work units", FLOAT)),
                  tuple(rows),
                  note=f"Work units: {weights.per_item:g} per item, +{weights.extra_per_escalated:g} if escalated, "
                  f"+{weights.extra_per_disagreement:g} if the crowd disagreed (the route filter does not apply)."),
        ),
    )


# ------------------------------------------------------------------------------------------ drift


def drift_windows(scope: Scope, *, today: dt.date) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """(reference, recent) day ranges, both ends included: the last DRIFT_RECENT_DAYS days up to the
    scope's end (`today` when open), and the DRIFT_REFERENCE_DAYS days before them."""
    end = scope.until or today
    recent = (end - dt.timedelta(days=DRIFT_RECENT_DAYS - 1), end)
    reference_end = recent[0] - dt.timedelta(days=1)
    return (reference_end - dt.timedelta(days=DRIFT_REFERENCE_DAYS - 1), reference_end), recent


def _model_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: {"confidence": np.zeros(CONFIDENCE_BINS, dtype=np.int64),
        "predicted": Counter()})
    for row in rows:
        for version, cell in row["model_versions"].items():
            totals[version]["confidence"] += np.asarray(cell["confidence"], dtype=np.int64)
            totals[version]["predicted"].update(cell["predicted"])
    return totals


def drift(ctx: ReportContext) -> Report:
    scope = ctx.scope
    reference_days, recent_days = drift_windows(scope, today=ctx.now.astimezone(dt.UTC).date())
    reference = _model_totals(ctx.item_stats(("model_versions",), days=reference_days))
    recent = _model_totals(ctx.item_stats(("model_versions",), days=recent_days))
    threshold = drift_alert_level()
    summary, confidence_rows, class_rows, alerts = [], [], [], []
    for version in sorted(set(reference) | set(recent)):
        ref, rec = reference.get(version), recent.get(version)
        ref_conf = ref["confidence"] if ref else np.zeros(CONFIDENCE_BINS, dtype=np.int64)
        rec_conf = rec["confidence"] if rec else np.zeros(CONFIDENCE_BINS, dtype=np.int64)
        classes = _classes(scope, (ref or {}).get("predicted", {}), (rec or {}).get("predicted", {}))
        ref_classes = metrics.class_counts((ref or {}).get("predicted", {}), classes)
        rec_classes = metrics.class_counts((rec or {}).get("predicted", {}), classes)
        psi_confidence = metrics.population_stability_index(ref_conf, rec_conf)
        psi_classes = metrics.population_stability_index(ref_classes, rec_classes)
        worst = max((p for p in (psi_confidence, psi_classes) if p is not None), default=None)
        alert = worst is not None and worst >= threshold
        summary.append({
            "model_version": version, "reference_items": int(ref_conf.sum()), "recent_items": int(rec_conf.sum()),
            "psi_confidence": psi_confidence, "psi_classes": psi_classes,
            "level": metrics.psi_level(worst) if worst is not None else "not enough data", "alert": alert,
        })
        if alert:
            alerts.append(f"Model {version}: predictions drifted (PSI {worst:.2f} ≥ {threshold:g}) between "
                          f"{reference_days[0]}–{reference_days[1]} and {recent_days[0]}–{recent_days[1]}.")
        for b in range(CONFIDENCE_BINS):
            confidence_rows.append({
                "model_version": version,
                "bin": f"{metrics.CONFIDENCE_BIN_EDGES[b]:.1f}–{metrics.CONFIDENCE_BIN_EDGES[b + 1]:.1f}",
                "reference_share": ref_conf[b] / ref_conf.sum() if ref_conf.sum() else None,
                "recent_share": rec_conf[b] / rec_conf.sum() if rec_conf.sum() else None,
            })
        for k, label in enumerate(classes):
            class_rows.append({
                "model_version": version, "label": label,
                "reference_share": ref_classes[k] / ref_classes.sum() if ref_classes.sum() else None,
                "recent_share": rec_classes[k] / rec_classes.sum() if rec_classes.sum() else None,
            })
    worst_all = max((p for s in summary for p in (s["psi_confidence"], s["psi_classes"]) if p is not None),
        default=None)
    window_note = (f"Reference {reference_days[0]} to {reference_days[1]}, recent {recent_days[0]} to {recent_days[1]} "
                   f"(by ingest day; the start of the date filter does not apply). Alert at PSI ≥ {threshold:g}.")
    return Report(
        name="drift",
        title="Drift",
        description="Whether the model's confidence and predicted classes in the last week differ from the four "
                    "weeks before (population stability index).",
        headline=(Figure("psi", "Largest PSI", worst_all, FLOAT, note=f"alert at {threshold:g}"),),
        alerts=tuple(alerts),
        tables=(
            Table("drift", "Population stability index by model version",
                  (Column("model_version", "Model version"), Column("reference_items", "Reference items", INT),
                   Column("recent_items", "Recent items", INT), Column("psi_confidence", "PSI confidence", FLOAT),
                   Column("psi_classes", "PSI predicted class", FLOAT), Column("level", "Reading"),
                   Column("alert", "Alert")),
                  tuple(summary), note=window_note),
            Table("drift_confidence", "Top-probability distribution",
                  (Column("model_version", "Model version"), Column("bin", "Top probability"),
                   Column("reference_share", "Reference", PERCENT), Column("recent_share", "Recent", PERCENT)),
                  tuple(confidence_rows)),
            Table("drift_classes", "Predicted class distribution",
                  (Column("model_version", "Model version"), Column("label", "Predicted class"),
                   Column("reference_share", "Reference", PERCENT), Column("recent_share", "Recent", PERCENT)),
                  tuple(class_rows)),
        ),
    )


# ------------------------------------------------------------------------------------------ calibration


def calibration(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = []
    names = {p.pk: p.name for p in scope.projects}
    for event in selectors.calibration_recommendations(scope.projects):
        data = event.data or {}
        rows.append({
            "project": names.get(int(event.object_id), event.object_id),
            "at": event.at,
            "summary": str(
            data.get("summary") or data.get("message") or "Recommended thresholds differ from the live policy."),
            "recommended": ", ".join(f"{k}={v}" for k, v in sorted((data.get("recommended") or {}).items())),
            "live": ", ".join(f"{k}={v}" for k, v in sorted((data.get("live") or {}).items())),
            # The daily job records every run, "no material change" included, so the latest event is the
            # current state; only a recommendation that differs from the live policy is an alert.
            "differs": bool(data.get("differs", True)),
        })
    return Report(
        name="calibration",
        title="Threshold calibration",
        description="The latest recommendation of the scheduled calibration, where it differs from the live policy.",
        alerts=tuple(f"{r['project']}: {r['summary']}" for r in rows if r["differs"]),
        tables=(
            Table("calibration", "Calibration recommendations",
                  (Column("project", "Project"), Column("at", "Recorded"), Column("summary", "Recommendation"),
                   Column("recommended", "Recommended"), Column("live", "Live"), Column("differs", "Differs")),
                  tuple(rows),
                  note='From the latest audit event "calibration.recommendation" of each project.'),
        ),
    )


ReportFunction = Callable[[ReportContext], Report]
REPORTS: dict[str, ReportFunction] = {
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
    "agreement": ("agreement_by_week", "agreement_by_domain", "agreement_by_route", "agreement_pairs"),
    "time_to_label": ("time_by_route", "time_per_item_by_role", "sla_compliance"),
    "gold_accuracy": ("gold_by_route", "gold_by_domain", "gold_by_class", "gold_by_annotator"),
    "escalation_value": ("escalation_accuracy", "escalation_summary", "cost_by_route"),
    "flow": ("status_counts", "escalation_by_week", "backlog", "expert_utilisation", "coverage_gaps"),
    "model_quality": ("model_summary", "model_by_class"),
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
