"""The dashboard's charts, built server-side from a report's tables as plotly figure specifications (the JSON
plotly.js draws; static/dashboards/dashboard.js calls Plotly.newPlot on each).

Figures are plain dicts in plotly's figure schema rather than plotly.graph_objects: the objects validate
every property on the way in and cost about 10 ms a figure, which made the page slow; the tests validate
every figure with plotly.graph_objects instead. What all charts share (fonts, colours, margins, axis
styles) is not repeated in every figure: dashboard.js merges it in (BASE_LAYOUT there), so a figure carries
its data and its own layout only. A point about items carries the item search's address (customdata);
clicking it opens the items.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dashboards.reports import MIN_SHARED_ITEMS
from dashboards.tables import Chart, Report, Table

PALETTE = ("#2457c5", "#e07b00", "#1b7f3b", "#b3261e", "#6b4fbb", "#00838f", "#8d6e63", "#c2185b")
ROUTE_COLOURS = {"auto": "#1b7f3b", "crowd": "#e07b00", "expert": "#b3261e", "pending": "#8a94a6", "All": "#2457c5"}
MAX_BARS = 25
# (upper bound, legend label, colour): Landis and Koch's reading of kappa, and plain shares for agreement.
KAPPA_BANDS = (
    (0.0, "kappa < 0 (poor)", "#b3261e"), (0.2, "0-0.2 (slight)", "#f4a582"), (0.4, "0.2-0.4 (fair)", "#d1e5f0"),
    (0.6, "0.4-0.6 (moderate)", "#92c5de"), (0.8, "0.6-0.8 (substantial)", "#4393c3"),
    (float("inf"), "0.8-1 (almost perfect)", "#2166ac"),
)
AGREEMENT_BANDS = (
    (0.5, "agree < 50%", "#f4a582"), (0.7, "50-70%", "#d1e5f0"), (0.85, "70-85%", "#92c5de"),
    (float("inf"), "85% or more", "#2166ac"),
)
SIGNIFICANT_DIGITS = 4
SHARE_AXIS = {"range": [-0.1, 1.05]}


def _round(value: Any) -> Any:
    """Numbers to SIGNIFICANT_DIGITS (a chart shows no more; the tables and CSV keep every digit)."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    return value


def _values(values: Sequence[Any]) -> list[Any]:
    return [_round(v) for v in values]


def _links(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """customdata with each point's item search address, when the rows have them."""
    urls = [r.get("items_url") for r in rows]
    return {"customdata": urls} if any(urls) else {}


def _trace(kind: str, x: Sequence[Any], y: Sequence[Any], rows: Sequence[Mapping[str, Any]] = (),
    **spec: Any) -> dict[str, Any]:
    return {"type": kind, "x": _values(x), "y": _values(y), **_links(rows), **spec}


def _figure(traces: Sequence[dict[str, Any]], title: str, empty: bool, *, note: str = "",
    **layout: Any) -> dict[str, Any]:
    layout = {"title": {"text": title}, **layout}
    message = "No data in scope" if empty else note
    if message:
        layout["annotations"] = [{"text": message, "showarrow": False, "xref": "paper", "yref": "paper",
                                  "x": 0.5, "y": 0.5 if empty else 1.0, "yanchor": "middle" if empty else "bottom",
                                  "font": {"size": 13, "color": "#5b6575"}}]
    if empty:
        layout["xaxis"] = {**layout.get("xaxis", {}), "visible": False}
        layout["yaxis"] = {**layout.get("yaxis", {}), "visible": False}
    return {"data": list(traces), "layout": layout}


def _rows(table: Table, *required: str) -> list[Mapping[str, Any]]:
    return [r for r in table.rows if all(r.get(k) is not None for k in required)]


def _labels(rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return [str(r[key]) for r in rows]


def _category_height(n: int, *, per: int = 26, least: int = 220) -> int:
    return max(least, 80 + per * n)


def _interval_chart(table: Table, key: str, title: str, *, horizontal: bool = True) -> dict[str, Any]:
    """Accuracy with its Wilson interval as error bars, one point per row."""
    rows = _rows(table, "accuracy")[:MAX_BARS]
    names = _labels(rows, key)
    accuracy = [r["accuracy"] for r in rows]
    hover = [f"{n}: {a:.1%} (n={r['n']})" for n, a, r in zip(names, accuracy, rows)]
    error = {"type": "data", "array": _values([r["high"] - r["accuracy"] for r in rows]),
             "arrayminus": _values([r["accuracy"] - r["low"] for r in rows]), "color": "#5b6575", "thickness": 1.2}
    if horizontal:
        trace = _trace("scatter", accuracy, names, rows, mode="markers", error_x=error, hovertext=hover,
                       hoverinfo="text", marker={"size": 9, "color": PALETTE[0]})
        return _figure([trace], title, not rows, xaxis={"range": [0, 1.02], "tickformat": ".0%"},
                       yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(rows)))
    trace = _trace("scatter", names, accuracy, rows, mode="markers", error_y=error, hovertext=hover, hoverinfo="text",
                   marker={"size": 10, "color": PALETTE[0]})
    return _figure([trace], title, not rows, yaxis={"range": [0, 1.02], "tickformat": ".0%"},
        xaxis={"type": "category"})


def _series(report: Report, weekly: str, daily: str) -> tuple[list[Mapping[str, Any]], list[str], str, str]:
    """(rows, x labels, title suffix, note) of a series over time: by day when the report has day rows (the
    history spans only a few weeks), else by week; the note says when there are too few points to read."""
    days = _rows(report.table(daily))
    if days:
        rows, labels, suffix = days, [f"{r['day']:%d %b}" for r in days], "by day of ingest"
    else:
        rows = _rows(report.table(weekly))
        rows, labels, suffix = rows, [f"{r['week']:%d %b %Y}" for r in rows], "by week of ingest"
    note = "One day of data so far: no trend yet" if len(rows) == 1 else ""
    return rows, labels, suffix, note


DURATION_UNITS = ((120, 1, "seconds"), (2 * 3600, 60, "minutes"), (48 * 3600, 3600, "hours"),
    (float("inf"), 86400, "days"))


def _duration_unit(seconds: Sequence[float | None]) -> tuple[float, str]:
    """The unit that reads best for the largest of `seconds`: (seconds per unit, name)."""
    largest = max((s for s in seconds if s is not None), default=0)
    return next((size, name) for limit, size, name in DURATION_UNITS if largest < limit)


def _in(seconds: Sequence[float | None], size: float) -> list[float | None]:
    return [None if s is None else s / size for s in seconds]


AGREEMENT_MEASURES = (("percent_agreement", "Pairwise agreement"), ("fleiss_kappa", "Fleiss' kappa"),
                      ("krippendorff_alpha", "Krippendorff's alpha"))


def projects(report: Report) -> list[Chart]:
    rows = _rows(report.table("projects"))
    measures = (("escalation_rate", "Escalation rate"), ("gold_accuracy", "Final labels correct on gold"),
                ("agreement", "Crowd pairwise agreement"), ("macro_f1", "Latest model's macro F1 on gold"))
    bars = [_trace("bar", [r[k] for r in rows], _labels(rows, "project"), rows, name=title, orientation="h")
            for k, title in measures]
    return [Chart("projects", "Projects side by side", _figure(
        bars, "Headline figures by project", not rows, barmode="group", xaxis={"range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(rows), per=90)), "projects")]


def agreement(report: Report) -> list[Chart]:
    series, labels, suffix, note = _series(report, "agreement_by_week", "agreement_by_day")
    over_time = [_trace("scatter", labels, [r[k] for r in series], series, name=title, mode="lines+markers")
                 for k, title in AGREEMENT_MEASURES]
    # Horizontal bars: domain paths are long, and on the vertical axis they are never cut or overlapped.
    domains = _rows(report.table("agreement_by_domain"))
    by_domain = [_trace("bar", [r[k] for r in domains], _labels(domains, "domain"), domains, name=title,
        orientation="h")
                 for k, title in AGREEMENT_MEASURES]
    # Cohen's kappa where pairs share enough items; otherwise their raw agreement, so the chart still shows
    # who agrees with whom (the table has both).
    pairs = _rows(report.table("agreement_pairs"))
    use_kappa = any(r["cohen_kappa"] is not None for r in pairs)
    key = "cohen_kappa" if use_kappa else "percent_agreement"
    people = sorted({r["annotator_a"] for r in pairs} | {r["annotator_b"] for r in pairs})
    # Square markers in banded colours with a legend, not a heatmap or a colour bar: plotly paints those
    # with inline styles, which the page's Content-Security-Policy refuses.
    bands = KAPPA_BANDS if use_kappa else AGREEMENT_BANDS
    size = max(10, min(28, 300 // max(len(people), 1)))
    cells: dict[int, tuple[list, list, list]] = {i: ([], [], []) for i in range(len(bands))}
    for r in pairs:
        if r[key] is None:
            continue
        band = next(i for i, (upper, _, _) in enumerate(bands) if r[key] < upper)
        kappa = "n/a" if r["cohen_kappa"] is None else f"{r['cohen_kappa']:.2f}"
        text = (f"{r['annotator_a']} & {r['annotator_b']}<br>{r['shared_items']} shared items"
                f"<br>agreement {r['percent_agreement']:.0%}<br>Cohen's kappa {kappa}")
        for a, b in ((r["annotator_a"], r["annotator_b"]), (r["annotator_b"], r["annotator_a"])):
            cells[band][0].append(b), cells[band][1].append(a), cells[band][2].append(text)
    heatmap = [
        _trace("scatter", xs, ys, mode="markers", hovertext=hover, hoverinfo="text", name=label,
               marker={"symbol": "square", "size": size, "color": colour, "line": {"width": 0}})
        for (xs, ys, hover), (_, label, colour) in zip(cells.values(), bands)
        if xs
    ]
    pair_title = ("Cohen's kappa, most active crowd annotators" if use_kappa
                  else f"Agreement, most active crowd annotators (kappa needs {MIN_SHARED_ITEMS} shared items)")
    return [
        Chart("agreement_over_time", "Agreement over time", _figure(
            over_time, f"Agreement {suffix}", not series, note=note, yaxis=SHARE_AXIS, xaxis={"type": "category"}),
            "agreement_by_day" if suffix.endswith("day of ingest") else "agreement_by_week"),
        Chart("agreement_domains", "Agreement by domain", _figure(
            by_domain, "Agreement by domain", not domains, barmode="group", xaxis=SHARE_AXIS,
            yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(domains), per=60)),
            "agreement_by_domain"),
        Chart("agreement_pairs", "Agreement between annotators", _figure(
            heatmap, pair_title, not heatmap,
            xaxis={"type": "category", "categoryorder": "array", "categoryarray": people, "showgrid": False},
            yaxis={"type": "category", "categoryorder": "array", "categoryarray": people[::-1], "showgrid": False},
            height=max(280, 150 + (size + 6) * len(people))), "agreement_pairs"),
    ]


def _quantile_chart(report: Report, table: str, key: str, name: str, title: str) -> Chart:
    """Median and 90th-percentile bars of a quantile table, one pair per `key`, in the unit that reads best
    for the largest 90th percentile."""
    rows = _rows(report.table(table), "median")
    size, unit = _duration_unit([r["p90"] for r in rows])
    bars = [
        _trace("bar", _labels(rows, key), _in([r["median"] for r in rows], size), rows, name="Median",
               marker={"color": PALETTE[0]}),
        _trace("bar", _labels(rows, key), _in([r["p90"] for r in rows], size), rows, name="90th percentile",
               marker={"color": "#9fb3d9"}),
    ]
    return Chart(name, title, _figure(bars, f"{title} ({unit})", not rows, barmode="group",
                 yaxis={"title": {"text": unit}}, xaxis={"type": "category"}), table)


def time_to_label(report: Report) -> list[Chart]:
    sla = report.table("sla_compliance")
    sla_chart = _interval_chart(
        dataclasses.replace(sla, rows=tuple({**r, "accuracy": r["share"], "n": r["completed"]} for r in sla.rows)),
        "domain", "Expert work within SLA", horizontal=True,
    )
    return [
        _quantile_chart(report, "time_by_route", "route", "time_by_route", "Ingest to final label"),
        _quantile_chart(report, "time_per_item_by_role", "role", "time_by_role", "Annotation time per item"),
        Chart("sla_compliance", "SLA compliance", sla_chart, "sla_compliance"),
    ]


def gold_accuracy(report: Report) -> list[Chart]:
    return [
        Chart("gold_by_route", "By route",
            _interval_chart(report.table("gold_by_route"), "route", "Accuracy on gold by route"), "gold_by_route"),
        Chart("gold_by_domain", "By domain",
            _interval_chart(report.table("gold_by_domain"), "domain", "Accuracy on gold by domain"), "gold_by_domain"),
        Chart("gold_by_class", "By class",
            _interval_chart(report.table("gold_by_class"), "label", "Recall by gold class"), "gold_by_class"),
        Chart("gold_by_annotator", "By annotator", _interval_chart(report.table("gold_by_annotator"), "annotator",
              f"Annotators on gold (top {MAX_BARS})"), "gold_by_annotator"),
    ]


def escalation_value(report: Report) -> list[Chart]:
    accuracy = _interval_chart(report.table("escalation_accuracy"), "label",
        "Escalated items with gold: correct before and after",
                               horizontal=False)
    costs = _rows(report.table("cost_by_route"))
    bars = [
        _trace("bar", _labels(costs, "route"), [r["cost_per_correct"] for r in costs], costs,
            name="Per correct label (gold)",
               marker={"color": PALETTE[0]}),
        _trace("bar", _labels(costs, "route"), [r["cost_per_label"] for r in costs], costs, name="Per labelled item",
               marker={"color": "#9fb3d9"}),
    ]
    return [
        Chart("escalation_accuracy", "Before and after escalation", accuracy, "escalation_accuracy"),
        Chart("cost_by_route", "Cost per label",
            _figure(bars, "Cost by route (crowd label = 1 unit)", not costs, barmode="group",
              xaxis={"type": "category"}), "cost_by_route"),
    ]


def flow(report: Report) -> list[Chart]:
    statuses = _rows(report.table("status_counts"))
    series, labels, suffix, note = _series(report, "escalation_by_week", "escalation_by_day")
    experts = _rows(report.table("expert_utilisation"), "utilisation")[:MAX_BARS]
    gaps = _rows(report.table("coverage_gaps"))
    escalation = [
        _trace("bar", labels, [r["items"] for r in series], series, name="Items ingested", marker={"color": "#c9d3e6"}),
        _trace("scatter", labels, [r["rate"] for r in series], series, name="Escalation rate", yaxis="y2",
               mode="lines+markers", line={"color": ROUTE_COLOURS["expert"]}),
    ]
    return [
        Chart("status_counts", "Items by status", _figure(
            [_trace("bar", _labels(statuses, "status"), [r["items"] for r in statuses], statuses)],
            "Items by status", not statuses, xaxis={"type": "category"}), "status_counts"),
        Chart("escalation_over_time", "Escalation rate", _figure(
            escalation, f"Escalation rate {suffix}", not series, note=note, yaxis={"title": {"text": "items"}},
            xaxis={"type": "category"},
            yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%", "rangemode": "tozero"}),
            "escalation_by_day" if suffix.endswith("day of ingest") else "escalation_by_week"),
        Chart("expert_utilisation", "Expert utilisation", _figure(
            [_trace("bar", [r["utilisation"] for r in experts], _labels(experts, "annotator"), orientation="h",
                    hovertext=[f"{r['open']} of {r['capacity']}" for r in experts])],
            "Expert utilisation (open / capacity)", not experts, xaxis={"tickformat": ".0%", "rangemode": "tozero"},
            yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(experts))),
                "expert_utilisation"),
        Chart("coverage_gaps", "Coverage gaps", _figure(
            [_trace("bar", [r["uncovered_hours"] for r in gaps], _labels(gaps, "domain"), gaps, orientation="h",
                    marker={"color": ROUTE_COLOURS["expert"]})],
            "Hours without a qualified expert, next 7 days", not gaps, xaxis={"range": [0, 168]},
            yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(gaps))), "coverage_gaps"),
    ]


def _model_name(row: Mapping[str, Any], many: bool) -> str:
    return f"{row['project']} · {row['model_version']}" if many else str(row["model_version"])


def model_quality(report: Report) -> list[Chart]:
    latest = _rows(report.table("model_by_project"))
    if len(latest) > 1:
        # Across projects: each project's own latest model, never one model for all of them.
        rows = [r for r in latest if r["macro_f1"] is not None]
        names = [f"{r['project']} ({r['model_version']})" for r in rows]
        bars = [_trace("bar", [r["macro_f1"] for r in rows], names, rows, orientation="h", name="Macro F1 on gold")]
        return [Chart("model_by_project", "Latest model by project", _figure(
            bars, "Macro F1 on gold of each project's latest model", not rows, xaxis={"range": [0, 1.02]},
            yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(rows))),
                "model_by_project")]
    rows = [r for r in report.table("model_by_class").rows if r["reference"] == "gold"]
    versions = sorted({r["model_version"] for r in rows})
    bars = [
        _trace("bar", [str(r["label"]) for r in rows if r["model_version"] == v],
               [r["f1"] for r in rows if r["model_version"] == v], [r for r in rows if r["model_version"] == v], name=v)
        for v in versions
    ]
    summary = _rows(report.table("model_summary"))
    overall = [
        _trace("bar", [r["model_version"] for r in summary if r["reference"] == ref],
               [r["macro_f1"] for r in summary if r["reference"] == ref], [r for r in summary if r["reference"] == ref],
               name=f"against {ref}")
        for ref in ("gold", "expert")
    ]
    return [
        Chart("model_f1_by_class", "F1 by class",
            _figure(bars, "F1 of the top prediction by class, against gold", not rows,
              barmode="group", yaxis={"range": [0, 1.02]}, xaxis={"type": "category"}), "model_by_class"),
        Chart("model_summary", "Macro F1 by version", _figure(overall, "Macro F1 by model version", not summary,
              barmode="group", yaxis={"range": [0, 1.02]}, xaxis={"type": "category"}), "model_summary"),
    ]


def effort(report: Report) -> list[Chart]:
    rows = _rows(report.table("effort"))[:MAX_BARS]
    names = [f"{r['annotator']} ({r['role']})" for r in rows]
    bars = [
        _trace("bar", [r["items"] for r in rows], names, orientation="h", name="Items", marker={"color": PALETTE[0]}),
        _trace("bar", [r["work_units"] - r["items"] for r in rows], names, orientation="h", name="Difficulty weighting",
               marker={"color": PALETTE[1]}),
    ]
    return [Chart("effort", "Work units",
        _figure(bars, f"Work units by annotator (top {MAX_BARS})", not rows, barmode="stack",
                  yaxis={"autorange": "reversed", "type": "category"}, height=_category_height(len(rows), per=24)),
                      "effort")]


def drift(report: Report) -> list[Chart]:
    summary = report.table("drift").rows
    projects_in = {r["project"] for r in summary}
    if len(projects_in) > 1:
        rows = [r for r in summary if r["psi"] is not None]
        names = [_model_name(r, True) for r in rows]
        bars = [_trace("bar", [r["psi"] for r in rows], names, rows, orientation="h", name="Largest PSI",
                       marker={"color": [ROUTE_COLOURS["expert"] if r["alert"] else PALETTE[0] for r in rows]})]
        return [Chart("drift_by_model", "Drift by model", _figure(
            bars, "Largest PSI by project and model version", not rows,
            yaxis={"autorange": "reversed", "type": "category"},
            height=_category_height(len(rows))), "drift")]
    chosen = next((r for r in reversed(summary) if r["recent_items"]), summary[-1] if summary else None)
    version = chosen["model_version"] if chosen else None
    bins = [r for r in report.table("drift_confidence").rows if r["model_version"] == version]
    classes = [r for r in report.table("drift_classes").rows if r["model_version"] == version]
    suffix = f" ({version})" if version else ""

    def pair(rows: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
        return [
            _trace("bar", [str(r[key]) for r in rows], [r["reference_share"] for r in rows], rows,
                   name="Reference (4 weeks)", marker={"color": "#9fb3d9"}),
            _trace("bar", [str(r[key]) for r in rows], [r["recent_share"] for r in rows], rows,
                   name="Recent (last week)", marker={"color": PALETTE[0]}),
        ]

    def has(rows: Sequence[Mapping[str, Any]]) -> bool:
        return any(r["reference_share"] is not None or r["recent_share"] is not None for r in rows)

    return [
        Chart("drift_confidence", "Top probability", _figure(pair(bins, "bin"), "Top-probability distribution" + suffix,
              not has(bins), barmode="group", yaxis={"tickformat": ".0%"}, xaxis={"type": "category"}),
                  "drift_confidence"),
        Chart("drift_classes", "Predicted classes", _figure(pair(classes, "label"), "Predicted classes" + suffix,
              not has(classes), barmode="group", yaxis={"tickformat": ".0%"}, xaxis={"type": "category"}),
                  "drift_classes"),
    ]


BUILDERS: dict[str, Callable[[Report], list[Chart]]] = {
    "projects": projects,
    "agreement": agreement,
    "time_to_label": time_to_label,
    "gold_accuracy": gold_accuracy,
    "escalation_value": escalation_value,
    "flow": flow,
    "model_quality": model_quality,
    "effort": effort,
    "drift": drift,
}


def with_charts(report: Report) -> Report:
    """The report with its charts (none for a report that has only tables)."""
    builder = BUILDERS.get(report.name)
    return dataclasses.replace(report, charts=tuple(builder(report))) if builder else report
