"""Reports on how the work runs: the value of escalation, flow and backlog, effort, threshold calibration."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dashboards import metrics, selectors
from dashboards.reports.base import (
    ACCURACY_COLUMNS,
    COVERAGE_HOURS,
    DAILY_DAYS,
    MIN_WEEKS,
    OPEN_STATUSES,
    ReportContext,
    accuracy_row,
    counter_total,
    day_filter,
    group_rows,
    route_order,
    sum_of,
    week_filter,
)
from dashboards.rollup import week_of
from dashboards.tables import ANNOTATOR, DATE, DURATION, FLOAT, INT, PERCENT, Column, Figure, Report, Table
from experts.availability import coverage_gaps

# ------------------------------------------------------------------------------------------ escalation value

ESCALATION_FIELDS = (
    "escalated", "escalation_labelled", "escalation_compared", "escalation_agreed", "escalation_with_gold",
    "escalation_pre_correct", "escalation_expert_correct", "escalation_fixed", "escalation_broken",
    "labeled", "crowd_labels", "expert_labels", "gold_items", "gold_correct", "gold_crowd_labels", "gold_expert_labels",
)


def escalation_value(ctx: ReportContext) -> Report:
    rows = ctx.item_stats(ESCALATION_FIELDS)
    s = {name: sum_of(rows, name) for name in ESCALATION_FIELDS}
    accuracy = (
        {**accuracy_row("label", "Before escalation (model or crowd)", s["escalation_pre_correct"],
            s["escalation_with_gold"]),
         "items_filter": {"route": "expert", "gold": "1"}},
        {**accuracy_row("label", "Expert", s["escalation_expert_correct"], s["escalation_with_gold"]),
         "items_filter": {"route": "expert", "gold": "1"}},
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
    routes = group_rows(rows, lambda r: r["route"])
    for route in route_order(routes):
        group = routes[route]
        cost = gold_cost = 0.0
        for row in group:
            expert_cost = configs[row["project_id"]].expert_cost
            cost += row["crowd_labels"] + row["expert_labels"] * expert_cost
            gold_cost += row["gold_crowd_labels"] + row["gold_expert_labels"] * expert_cost
        labeled, gold_correct = sum_of(group, "labeled"), sum_of(group, "gold_correct")
        cost_rows.append({
            "route": route,
            "items_filter": {"route": route},
            "labeled": labeled,
            "crowd_labels": sum_of(group, "crowd_labels"),
            "expert_labels": sum_of(group, "expert_labels"),
            "cost": cost,
            "cost_per_label": cost / labeled if labeled else None,
            "gold_items": sum_of(group, "gold_items"),
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


def _escalation(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    items, escalated = sum_of(rows, "items"), sum_of(rows, "escalated")
    return {"items": items, "escalated": escalated, "rate": escalated / items if items else None}


def flow(ctx: ReportContext) -> Report:
    scope = ctx.scope
    rows = ctx.item_stats(("items", "escalated", "statuses"))
    statuses = counter_total(rows, "statuses")
    status_rows = tuple({"status": status, "items": statuses[status], "items_filter": {"status": status}}
                        for status in sorted(statuses, key=lambda s: -statuses[s]))
    weeks = group_rows(rows, lambda r: week_of(r["day"]))
    by_week = [{"week": week, **_escalation(group), "items_filter": week_filter(week)} for week, group in weeks.items()]
    by_day = []
    if len(weeks) < MIN_WEEKS:
        days = group_rows(ctx.day_stats(("items", "escalated")), lambda r: r["day"])
        by_day = [{"day": day, **_escalation(group), "items_filter": day_filter(day)} for day, group in days.items()]
    total_items, total_escalated = sum_of(rows, "items"), sum_of(rows, "escalated")
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
            "items_filter": {"domain": domain},
        })
    return Report(
        name="flow",
        title="Flow",
        description="Where items are now, how many get escalated, the expert backlog and whether the roster covers "
        "the next week.",
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
            Table("escalation_by_day", "Escalation rate by day of ingest",
                  (Column("day", "Day", DATE), Column("items", "Items", INT), Column("escalated", "Escalated", INT),
                   Column("rate", "Escalation rate", PERCENT)), tuple(by_day),
                  note=f"While the history in scope spans fewer than {MIN_WEEKS} weeks: its last {DAILY_DAYS} days."),
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
