"""The threshold sweep: the live policy with its main thresholds varied, replayed, against majority vote;
the best trade-offs, as a table and as a self-contained plotly chart (plotly imported only to draw it)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from pilot.simulation import (
    PilotReport,
    PilotSetup,
    run_pilot,
)
from routing.engine.reliability import (
    DEFAULT_LEARNER,
    LearnerOptions,
)
from routing.engine.types import (
    PolicyConfig,
)

# ---------------------------------------------------------------------------------------------------------
# Threshold sweep

# consensus_min_posterior values swept by `curve`; auto-accept top probabilities when there are predictions.
CURVE_POSTERIORS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.875, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995)
CURVE_TOP_PROBABILITIES = (0.7, 0.8, 0.9, 0.95, 0.99)


def curve_policies(base: PolicyConfig, *, with_predictions: bool) -> list[PolicyConfig]:
    """The policies `curve` replays: the base with its main thresholds varied (docs/pilot.md)."""
    posteriors = [dataclasses.replace(base, consensus_min_posterior=p) for p in CURVE_POSTERIORS]
    if not with_predictions:
        return posteriors
    return [
        dataclasses.replace(policy, auto_accept_min_top_probability=top)
        for top in CURVE_TOP_PROBABILITIES
        for policy in posteriors
    ]


def curve(
    setup: PilotSetup,
    base: PolicyConfig,
    *,
    learner: LearnerOptions = DEFAULT_LEARNER,
    policies: Sequence[PolicyConfig] | None = None,
) -> list[dict[str, float]]:
    """Accuracy against labels per item for each policy of `curve_policies` (same split, same order)."""
    chosen = (
        policies if policies is not None else curve_policies(base, with_predictions=bool(setup.history.predictions))
    )
    rows = []
    for policy in chosen:
        report = run_pilot(setup, policy, learner=learner, with_baselines=False)
        rows.append(
            {
                "consensus_min_posterior": policy.consensus_min_posterior,
                "auto_accept_min_top_probability": policy.auto_accept_min_top_probability,
                **{
                    key: report.adaptive[key]
                    for key in (
                        "accuracy",
                        "labels_per_item",
                        "expert_labels_per_item",
                        "auto_accept_rate",
                        "cost_per_item",
                    )
                },
            }
        )
    return rows


def pareto(rows: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """Rows no other row beats on both accuracy (higher) and labels per item (lower), cheapest first."""
    ordered = sorted(rows, key=lambda r: (r["labels_per_item"], -r["accuracy"]))
    front, best = [], -math.inf
    for row in ordered:
        if row["accuracy"] > best:
            front.append(row)
            best = row["accuracy"]
    return front


def curve_table(
    rows: Sequence[Mapping[str, float]], mv_rows: Sequence[Mapping[str, float]], with_predictions: bool
) -> str:
    """The sweep as a fixed-width text table, then majority vote on the first k judgments."""
    front = {id(r) for r in pareto(rows)}
    head = (
        ["posterior"]
        + (["top_prob"] if with_predictions else [])
        + ["accuracy", "labels/item", "expert/item", "cost/item", ""]
    )
    lines = ["  ".join(f"{h:>11}" for h in head)]
    for row in rows:
        cells = [f"{row['consensus_min_posterior']:>11.3f}"]
        if with_predictions:
            cells.append(f"{row['auto_accept_min_top_probability']:>11.3f}")
        cells += [
            f"{row['accuracy']:>11.4f}",
            f"{row['labels_per_item']:>11.2f}",
            f"{row['expert_labels_per_item']:>11.2f}",
            f"{row['cost_per_item']:>11.2f}",
            f"{'pareto' if id(row) in front else '':>11}",
        ]
        lines.append("  ".join(cells))
    lines.append("")
    lines.append("majority vote on the first k judgments")
    lines.append("  ".join(f"{h:>11}" for h in ("k", "accuracy", "labels/item")))
    for row in mv_rows:
        lines.append(f"{row['k']:>11d}  {row['accuracy']:>11.4f}  {row['labels_per_item']:>11.2f}")
    return "\n".join(lines)


BASELINE_NAMES = {
    "dawid_skene_all": "Dawid-Skene, all judgments",
    "majority_vote_all": "majority vote, all judgments",
    "model_only": "model alone",
}


def curve_html(
    rows: Sequence[Mapping[str, float]],
    mv_rows: Sequence[Mapping[str, float]],
    report: PilotReport,
    *,
    title: str = "Pilot",
) -> str:
    """A self-contained HTML chart of the sweep: plotly.js is inlined, so it opens offline (no CDN)."""
    # Imported here, not at the top: only drawing the chart needs plotly (it is slow to load and large).
    import plotly.graph_objects as go

    front = pareto(rows)
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in rows],
            y=[r["accuracy"] for r in rows],
            mode="markers",
            name="adaptive policy (sweep)",
            text=[
                f"posterior ≥ {r['consensus_min_posterior']}, top probability ≥ {r['auto_accept_min_top_probability']}"
                for r in rows
            ],
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in front],
            y=[r["accuracy"] for r in front],
            mode="lines",
            name="adaptive policy (best trade-offs)",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[r["labels_per_item"] for r in mv_rows],
            y=[r["accuracy"] for r in mv_rows],
            mode="lines+markers",
            name="majority vote, first k judgments",
            text=[f"k = {r['k']}" for r in mv_rows],
        )
    )
    adaptive = report.adaptive
    figure.add_trace(
        go.Scatter(
            x=[adaptive["labels_per_item"]],
            y=[adaptive["accuracy"]],
            mode="markers",
            marker={"size": 14, "symbol": "star"},
            name="adaptive policy (as given)",
        )
    )
    for name, values in report.baselines.items():
        if name in BASELINE_NAMES:
            figure.add_trace(
                go.Scatter(
                    x=[values["labels_per_item"]],
                    y=[values["accuracy"]],
                    mode="markers",
                    marker={"size": 12, "symbol": "diamond"},
                    name=BASELINE_NAMES[name],
                )
            )
    figure.update_layout(
        title=title,
        xaxis_title="labels per item (crowd + expert)",
        yaxis_title="accuracy on scored gold items",
        template="plotly_white",
    )
    return figure.to_html(include_plotlyjs=True, full_html=True)
