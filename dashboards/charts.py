"""Plotly figures for the dashboard, built server-side from a report's tables (plotly.graph_objects), so
the browser only draws them (static/dashboards/dashboard.js calls Plotly.newPlot on each)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

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


AXIS = {"gridcolor": "#e9edf3", "zerolinecolor": "#cfd6e1", "linecolor": "#cfd6e1", "automargin": True}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    # An explicit empty template: plotly would otherwise deep-copy its default template into every
    # figure (about 0.1 s and 8 KiB each); the few styles we want are set here instead.
    layout = {
        "template": go.layout.Template(),
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 48, "b": 48},
        "height": 320,
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12, "color": "#1d2430"},
        "legend": {"orientation": "h", "y": -0.2},
        "colorway": list(PALETTE),
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hoverlabel": {"bgcolor": "#ffffff"},
    }
    for axis in ("xaxis", "yaxis"):
        layout[axis] = {**AXIS, **extra.pop(axis, {})}
    layout.update(extra)
    return layout


def _figure(traces: Sequence[go.BaseTraceType], title: str, empty: bool, **layout: Any) -> dict[str, Any]:
    fig = go.Figure(data=list(traces), layout=_layout(title, **layout))
    if empty:
        fig.add_annotation(text="No data in scope", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                           font={"size": 14, "color": "#5b6575"})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return json.loads(fig.to_json())


def _rows(table: Table, *required: str) -> list[Mapping[str, Any]]:
    return [r for r in table.rows if all(r.get(k) is not None for k in required)]


def _labels(rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return [str(r[key]) for r in rows]


def _interval_chart(table: Table, key: str, title: str, *, horizontal: bool = True) -> dict[str, Any]:
    """Accuracy with its Wilson interval as error bars, one point per row."""
    rows = _rows(table, "accuracy")[:MAX_BARS]
    names = _labels(rows, key)
    accuracy = [r["accuracy"] for r in rows]
    plus = [r["high"] - r["accuracy"] for r in rows]
    minus = [r["accuracy"] - r["low"] for r in rows]
    hover = [f"{n}: {a:.1%} (n={r['n']})" for n, a, r in zip(names, accuracy, rows)]
    error = {"type": "data", "array": plus, "arrayminus": minus, "color": "#5b6575", "thickness": 1.2}
    if horizontal:
        trace = go.Scatter(x=accuracy, y=names, mode="markers", error_x=error, hovertext=hover, hoverinfo="text",
                           marker={"size": 9, "color": PALETTE[0]})
        return _figure([trace], title, not rows, xaxis={"range": [0, 1.02], "tickformat": ".0%"},
                       yaxis={"autorange": "reversed", "type": "category"},
                       height=max(220, 60 + 26 * len(rows)), margin={"l": 160, "r": 20, "t": 48, "b": 40})
    trace = go.Scatter(x=names, y=accuracy, mode="markers", error_y=error, hovertext=hover, hoverinfo="text",
                       marker={"size": 10, "color": PALETTE[0]})
    return _figure([trace], title, not rows, yaxis={"range": [0, 1.02], "tickformat": ".0%"},
        xaxis={"type": "category"})


def _weeks(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Week labels for a category axis (a date axis with one or two weeks shows sub-second ticks)."""
    return [f"{r['week']:%d %b %Y}" for r in rows]


DURATION_UNITS = ((120, 1, "seconds"), (2 * 3600, 60, "minutes"), (48 * 3600, 3600, "hours"),
    (float("inf"), 86400, "days"))


def _duration_unit(seconds: Sequence[float | None]) -> tuple[float, str]:
    """The unit that reads best for the largest of `seconds`: (seconds per unit, name)."""
    largest = max((s for s in seconds if s is not None), default=0)
    return next((size, name) for limit, size, name in DURATION_UNITS if largest < limit)


def _in(seconds: Sequence[float | None], size: float) -> list[float | None]:
    return [None if s is None else s / size for s in seconds]


def agreement(report: Report) -> list[Chart]:
    weeks = _rows(report.table("agreement_by_week"))
    measures = (("percent_agreement", "Pairwise agreement"), ("fleiss_kappa", "Fleiss' kappa"),
                ("krippendorff_alpha", "Krippendorff's alpha"))
    over_time = [
        go.Scatter(x=_weeks(weeks), y=[r[k] for r in weeks], name=title, mode="lines+markers")
        for k, title in measures
    ]
    domains = _rows(report.table("agreement_by_domain"))
    by_domain = [go.Bar(x=_labels(domains, "domain"), y=[r[k] for r in domains], name=title) for k, title in measures]
    # Cohen's kappa where pairs share enough items; otherwise their raw agreement, so the chart still shows
    # who agrees with whom (the table has both).
    pairs = _rows(report.table("agreement_pairs"))
    use_kappa = any(r["cohen_kappa"] is not None for r in pairs)
    key = "cohen_kappa" if use_kappa else "percent_agreement"
    people = sorted({r["annotator_a"] for r in pairs} | {r["annotator_b"] for r in pairs})
    # Square markers in banded colours with a legend, not a go.Heatmap or a colour bar: plotly paints those
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
        go.Scatter(x=xs, y=ys, mode="markers", hovertext=hover, hoverinfo="text", name=label,
                   marker={"symbol": "square", "size": size, "color": colour, "line": {"width": 0}})
        for (xs, ys, hover), (_, label, colour) in zip(cells.values(), bands)
        if xs
    ]
    pair_title = ("Cohen's kappa, most active crowd annotators" if use_kappa
                  else f"Agreement, most active crowd annotators (kappa needs {MIN_SHARED_ITEMS} shared items)")
    return [
        Chart("agreement_over_time", "Agreement by week", _figure(over_time, "Agreement by week of ingest", not weeks,
              yaxis={"range": [-0.1, 1.05]}, xaxis={"type": "category"}), "agreement_by_week"),
        Chart("agreement_domains", "Agreement by domain", _figure(by_domain, "Agreement by domain", not domains,
              barmode="group", yaxis={"range": [-0.1, 1.05]}), "agreement_by_domain"),
        Chart("agreement_pairs", "Agreement between annotators", _figure(heatmap, pair_title, not heatmap,
              xaxis={"type": "category", "categoryorder": "array", "categoryarray": people, "showgrid": False},
              yaxis={"type": "category", "categoryorder": "array", "categoryarray": people[::-1], "showgrid": False},
              height=max(280, 150 + (size + 6) * len(people)), margin={"l": 110, "r": 20, "t": 48, "b": 60}),
              "agreement_pairs"),
    ]


def _quantile_chart(report: Report, table: str, key: str, name: str, title: str) -> Chart:
    """Median and 90th-percentile bars of a quantile table, one pair per `key`, in the unit that reads best
    for the largest 90th percentile."""
    rows = _rows(report.table(table), "median")
    size, unit = _duration_unit([r["p90"] for r in rows])
    bars = [
        go.Bar(x=_labels(rows, key), y=_in([r["median"] for r in rows], size), name="Median",
               marker={"color": PALETTE[0]}),
        go.Bar(x=_labels(rows, key), y=_in([r["p90"] for r in rows], size), name="90th percentile",
               marker={"color": "#9fb3d9"}),
    ]
    return Chart(name, title, _figure(bars, f"{title} ({unit})", not rows, barmode="group",
                 yaxis={"title": {"text": unit}}), table)


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
        go.Bar(x=_labels(costs, "route"), y=[r["cost_per_correct"] for r in costs], name="Per correct label (gold)",
               marker={"color": PALETTE[0]}),
        go.Bar(x=_labels(costs, "route"), y=[r["cost_per_label"] for r in costs], name="Per labelled item",
               marker={"color": "#9fb3d9"}),
    ]
    return [
        Chart("escalation_accuracy", "Before and after escalation", accuracy, "escalation_accuracy"),
        Chart("cost_by_route", "Cost per label",
            _figure(bars, "Cost by route (crowd label = 1 unit)", not costs, barmode="group"),
              "cost_by_route"),
    ]


def flow(report: Report) -> list[Chart]:
    statuses = _rows(report.table("status_counts"))
    weeks = _rows(report.table("escalation_by_week"))
    experts = _rows(report.table("expert_utilisation"), "utilisation")[:MAX_BARS]
    gaps = _rows(report.table("coverage_gaps"))
    escalation = [
        go.Bar(x=_weeks(weeks), y=[r["items"] for r in weeks], name="Items ingested",
               marker={"color": "#c9d3e6"}),
        go.Scatter(x=_weeks(weeks), y=[r["rate"] for r in weeks], name="Escalation rate", yaxis="y2",
                   mode="lines+markers", line={"color": ROUTE_COLOURS["expert"]}),
    ]
    return [
        Chart("status_counts", "Items by status",
            _figure([go.Bar(x=_labels(statuses, "status"), y=[r["items"] for r in statuses])],
              "Items by status", not statuses), "status_counts"),
        Chart("escalation_by_week", "Escalation rate",
            _figure(escalation, "Escalation rate by week of ingest", not weeks,
              yaxis={"title": {"text": "items"}}, xaxis={"type": "category"},
              yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%", "rangemode": "tozero"}),
                  "escalation_by_week"),
        Chart("expert_utilisation", "Expert utilisation", _figure(
            [go.Bar(x=[r["utilisation"] for r in experts], y=_labels(experts, "annotator"), orientation="h",
                    hovertext=[f"{r['open']} of {r['capacity']}" for r in experts])],
            "Expert utilisation (open / capacity)", not experts, xaxis={"tickformat": ".0%", "rangemode": "tozero"},
            yaxis={"autorange": "reversed"}, height=max(220, 60 + 26 * len(experts)),
            margin={"l": 160, "r": 20, "t": 48, "b": 40}), "expert_utilisation"),
        Chart("coverage_gaps", "Coverage gaps", _figure(
            [go.Bar(x=_labels(gaps, "domain"), y=[r["uncovered_hours"] for r in gaps],
                marker={"color": ROUTE_COLOURS["expert"]})],
            "Hours without a qualified expert, next 7 days", not gaps, yaxis={"range": [0, 168]}), "coverage_gaps"),
    ]


def model_quality(report: Report) -> list[Chart]:
    rows = [r for r in report.table("model_by_class").rows if r["reference"] == "gold"]
    versions = sorted({r["model_version"] for r in rows})
    bars = [
        go.Bar(x=[str(r["label"]) for r in rows if r["model_version"] == v],
               y=[r["f1"] for r in rows if r["model_version"] == v], name=v)
        for v in versions
    ]
    summary = _rows(report.table("model_summary"))
    overall = [
        go.Bar(x=[r["model_version"] for r in summary if r["reference"] == ref],
               y=[r["macro_f1"] for r in summary if r["reference"] == ref], name=f"against {ref}")
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
    base = [r["items"] for r in rows]
    extra = [r["work_units"] - r["items"] for r in rows]
    bars = [
        go.Bar(x=base, y=names, orientation="h", name="Items", marker={"color": PALETTE[0]}),
        go.Bar(x=extra, y=names, orientation="h", name="Difficulty weighting", marker={"color": PALETTE[1]}),
    ]
    return [Chart("effort", "Work units",
        _figure(bars, f"Work units by annotator (top {MAX_BARS})", not rows, barmode="stack",
                  yaxis={"autorange": "reversed"}, height=max(240, 70 + 24 * len(rows)),
                  margin={"l": 190, "r": 20, "t": 48, "b": 40}), "effort")]


def drift(report: Report) -> list[Chart]:
    summary = report.table("drift").rows
    version = next((r["model_version"] for r in reversed(summary) if r["recent_items"]), None)
    version = version or (summary[-1]["model_version"] if summary else None)
    bins = [r for r in report.table("drift_confidence").rows if r["model_version"] == version]
    classes = [r for r in report.table("drift_classes").rows if r["model_version"] == version]
    suffix = f" ({version})" if version else ""

    def pair(rows: Sequence[Mapping[str, Any]], key: str) -> list[go.Bar]:
        return [
            go.Bar(x=[str(r[key]) for r in rows], y=[r["reference_share"] for r in rows], name="Reference (4 weeks)",
                   marker={"color": "#9fb3d9"}),
            go.Bar(x=[str(r[key]) for r in rows], y=[r["recent_share"] for r in rows], name="Recent (last week)",
                   marker={"color": PALETTE[0]}),
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
