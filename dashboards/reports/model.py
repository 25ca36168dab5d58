"""Reports on the model: quality against gold and experts, and drift of its predictions.

A model version belongs to a project: the same name in two projects is two models (different classes,
different items), so every figure here is per project and model version, and a project's classes are the
only ones its models are read against. A project's "latest" version is the one whose predictions reach the
most recent ingest day in scope.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from dashboards import metrics
from dashboards.reports.base import (
    DRIFT_RECENT_DAYS,
    DRIFT_REFERENCE_DAYS,
    ReportContext,
    class_order,
    drift_alert_level,
)
from dashboards.rollup import CONFIDENCE_BINS
from dashboards.selectors import Scope
from dashboards.tables import FLOAT, INT, PERCENT, Column, Figure, Report, Table

ModelKey = tuple[int, str]  # (project id, model version)

# ------------------------------------------------------------------------------------------ model quality


def _sum_confusion(cells: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, Counter]:
    total: dict[str, Counter] = defaultdict(Counter)
    for cell in cells:
        for true, predicted in cell.items():
            total[true].update(predicted)
    return total


def _model_key_order(ctx: ReportContext, key: ModelKey) -> tuple[str, int, str]:
    project = ctx.projects[key[0]]
    return (project.name, project.pk, key[1])


def latest_versions(rows: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """Each project's latest model version: the one predicting on the latest ingest day (then by name)."""
    last: dict[int, tuple[dt.date, str]] = {}
    for row in rows:
        for version in row["model_versions"]:
            candidate = (row["day"], version)
            if row["project_id"] not in last or candidate > last[row["project_id"]]:
                last[row["project_id"]] = candidate
    return {project_id: version for project_id, (_, version) in last.items()}


def model_summaries(ctx: ReportContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, str]]:
    """(summary rows, per-class rows, latest version by project id) of every project's model versions in
    scope, against gold and against expert labels; memoised for the request."""
    return ctx.shared("model_summaries", lambda: _model_summaries(ctx))


def _model_summaries(ctx: ReportContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, str]]:
    rows = ctx.item_stats(("model_versions",))
    latest = latest_versions(rows)
    cells: dict[ModelKey, dict[str, list]] = defaultdict(lambda: {"gold": [], "expert": []})
    for row in rows:
        for version, cell in row["model_versions"].items():
            cells[(row["project_id"], version)]["gold"].append(cell["gold"])
            cells[(row["project_id"], version)]["expert"].append(cell["expert"])
    per_class, summary = [], []
    for key in sorted(cells, key=lambda k: _model_key_order(ctx, k)):
        project = ctx.projects[key[0]]
        version = key[1]
        ids = {"project": project.name, "model_version": version,
               "items_filter": {"project": project.slug, "model_version": version}}
        for reference in ("gold", "expert"):
            confusion = _sum_confusion(cells[key][reference])
            seen = set(confusion) | {p for c in confusion.values() for p in c}
            classes = class_order((project,), seen)
            table = metrics.contingency_table(
                [(t, p, n) for t, c in confusion.items() for p, n in c.items()], classes
            )
            report = metrics.per_class_prf(table, classes)
            if report is None:
                continue
            summary.append({
                **ids, "latest": latest.get(key[0]) == version, "reference": reference, "n": report.n,
                "accuracy": report.accuracy, "macro_precision": report.macro_precision,
                "macro_recall": report.macro_recall, "macro_f1": report.macro_f1,
            })
            per_class += [
                {**ids, "reference": reference, "label": c.label, "precision": c.precision, "recall": c.recall,
                 "f1": c.f1, "support": c.support, "predicted": c.predicted}
                for c in report.per_class
                if c.support or c.predicted
            ]
    return summary, per_class, latest


def model_quality(ctx: ReportContext) -> Report:
    summary, per_class, latest = model_summaries(ctx)
    on_gold = {(s["project"], s["model_version"]): s for s in summary if s["reference"] == "gold"}
    if len(ctx.scope.projects) == 1:
        project = ctx.scope.projects[0]
        version = latest.get(project.pk)
        best = on_gold.get((project.name, version))
        headline = (
            Figure("macro_f1", f"Macro F1 on gold ({version})" if version else "Macro F1 on gold",
                   best["macro_f1"] if best else None),
            Figure("accuracy", "Accuracy on gold", best["accuracy"] if best else None, PERCENT,
                   note=f"n = {best['n']}" if best else ""),
        )
    else:
        # Across projects there is no one model: the table "Latest model by project" has each project's.
        headline = (
            Figure("projects_measured", "Projects whose latest model has gold items",
                   sum(1 for p in ctx.scope.projects if (p.name, latest.get(p.pk)) in on_gold), INT),
        )
    by_project = []
    for project in ctx.scope.projects:
        version = latest.get(project.pk)
        gold = on_gold.get((project.name, version), {})
        by_project.append({
            "project": project.name, "model_version": version or "", "n": gold.get("n", 0),
            "accuracy": gold.get("accuracy"), "macro_f1": gold.get("macro_f1"),
            "items_filter": {"project": project.slug, **({"model_version": version} if version else {})},
        })
    version_columns = (Column("project", "Project"), Column("model_version", "Model version"))
    return Report(
        name="model_quality",
        title="Model quality",
        description="Each project's model versions: the top predicted label against gold labels and against "
        "expert labels.",
        headline=headline,
        tables=(
            Table("model_by_project", "Latest model by project",
                  (*version_columns, Column("n", "Gold items", INT), Column("accuracy", "Accuracy on gold", PERCENT),
                   Column("macro_f1", "Macro F1 on gold", FLOAT)), tuple(by_project),
                  note="A project's latest model version is the one predicting on the latest ingest day in scope."),
            Table("model_summary", "By project and model version",
                  (*version_columns, Column("latest", "Latest"), Column("reference", "Against"),
                   Column("n", "Items", INT), Column("accuracy", "Accuracy", PERCENT),
                   Column("macro_precision", "Macro precision", FLOAT), Column("macro_recall", "Macro recall", FLOAT),
                   Column("macro_f1", "Macro F1", FLOAT)), tuple(summary)),
            Table("model_by_class", "By class",
                  (*version_columns, Column("reference", "Against"), Column("label", "Class"),
                   Column("precision", "Precision", FLOAT), Column("recall", "Recall", FLOAT),
                   Column("f1", "F1", FLOAT),
                   Column("support", "Support", INT), Column("predicted", "Predicted", INT)), tuple(per_class)),
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


def _model_totals(rows: Iterable[Mapping[str, Any]]) -> dict[ModelKey, dict[str, Any]]:
    totals: dict[ModelKey, dict[str, Any]] = defaultdict(
        lambda: {"confidence": np.zeros(CONFIDENCE_BINS, dtype=np.int64), "predicted": Counter()}
    )
    for row in rows:
        for version, cell in row["model_versions"].items():
            key = (row["project_id"], version)
            totals[key]["confidence"] += np.asarray(cell["confidence"], dtype=np.int64)
            totals[key]["predicted"].update(cell["predicted"])
    return totals


def _share(counts: np.ndarray, k: int) -> float | None:
    return counts[k] / counts.sum() if counts.sum() else None


def drift_summaries(ctx: ReportContext) -> dict[str, Any]:
    """PSI of every project's model versions between the drift windows, with the distributions compared;
    memoised for the request."""
    return ctx.shared("drift", lambda: _drift_summaries(ctx))


def _drift_summaries(ctx: ReportContext) -> dict[str, Any]:
    reference_days, recent_days = drift_windows(ctx.scope, today=ctx.now.astimezone(dt.UTC).date())
    reference = _model_totals(ctx.item_stats(("model_versions",), days=reference_days))
    recent = _model_totals(ctx.item_stats(("model_versions",), days=recent_days))
    threshold = drift_alert_level()
    summary, confidence_rows, class_rows, alerts = [], [], [], []
    empty = {"confidence": np.zeros(CONFIDENCE_BINS, dtype=np.int64), "predicted": Counter()}
    for key in sorted(set(reference) | set(recent), key=lambda k: _model_key_order(ctx, k)):
        project, version = ctx.projects[key[0]], key[1]
        ref, rec = reference.get(key, empty), recent.get(key, empty)
        # Only the project's own classes (and labels its model actually predicted): never another project's.
        classes = class_order((project,), ref["predicted"], rec["predicted"])
        ref_classes = metrics.class_counts(ref["predicted"], classes)
        rec_classes = metrics.class_counts(rec["predicted"], classes)
        psi_confidence = metrics.population_stability_index(ref["confidence"], rec["confidence"])
        psi_classes = metrics.population_stability_index(ref_classes, rec_classes)
        worst = max((p for p in (psi_confidence, psi_classes) if p is not None), default=None)
        alert = worst is not None and worst >= threshold
        ids = {"project": project.name, "model_version": version,
               "items_filter": {"project": project.slug, "model_version": version}}
        summary.append({
            **ids, "reference_items": int(ref["confidence"].sum()), "recent_items": int(rec["confidence"].sum()),
            "psi_confidence": psi_confidence, "psi_classes": psi_classes, "psi": worst,
            "level": metrics.psi_level(worst) if worst is not None else "not enough data", "alert": alert,
        })
        if alert:
            alerts.append(f"{project.name}, model {version}: predictions drifted (PSI {worst:.2f} ≥ {threshold:g}) "
                          f"between {reference_days[0]}–{reference_days[1]} and {recent_days[0]}–{recent_days[1]}.")
        for b in range(CONFIDENCE_BINS):
            confidence_rows.append({
                **ids, "bin": f"{metrics.CONFIDENCE_BIN_EDGES[b]:.1f}–{metrics.CONFIDENCE_BIN_EDGES[b + 1]:.1f}",
                "reference_share": _share(ref["confidence"], b), "recent_share": _share(rec["confidence"], b),
            })
        for k, label in enumerate(classes):
            class_rows.append({
                **ids, "label": label,
                "reference_share": _share(ref_classes, k), "recent_share": _share(rec_classes, k),
            })
    return {"summary": summary, "confidence": confidence_rows, "classes": class_rows, "alerts": alerts,
            "windows": (reference_days, recent_days), "threshold": threshold}


def drift(ctx: ReportContext) -> Report:
    found = drift_summaries(ctx)
    summary, (reference_days, recent_days), threshold = found["summary"], found["windows"], found["threshold"]
    worst_all = max((s["psi"] for s in summary if s["psi"] is not None), default=None)
    window_note = (f"Reference {reference_days[0]} to {reference_days[1]}, recent {recent_days[0]} to {recent_days[1]} "
                   f"(by ingest day; the start of the date filter does not apply). Alert at PSI ≥ {threshold:g}.")
    version_columns = (Column("project", "Project"), Column("model_version", "Model version"))
    return Report(
        name="drift",
        title="Drift",
        description="Whether each model's confidence and predicted classes in the last week differ from the four "
        "weeks before (population stability index), per project and model version.",
        headline=(Figure("psi", "Largest PSI", worst_all, FLOAT, note=f"alert at {threshold:g}"),),
        alerts=tuple(found["alerts"]),
        tables=(
            Table("drift", "Population stability index by project and model version",
                  (*version_columns, Column("reference_items", "Reference items", INT),
                   Column("recent_items", "Recent items", INT), Column("psi_confidence", "PSI confidence", FLOAT),
                   Column("psi_classes", "PSI predicted class", FLOAT), Column("level", "Reading"),
                   Column("alert", "Alert")),
                  tuple(summary), note=window_note),
            Table("drift_confidence", "Top-probability distribution",
                  (*version_columns, Column("bin", "Top probability"),
                   Column("reference_share", "Reference", PERCENT), Column("recent_share", "Recent", PERCENT)),
                  tuple(found["confidence"])),
            Table("drift_classes", "Predicted class distribution",
                  (*version_columns, Column("label", "Predicted class"),
                   Column("reference_share", "Reference", PERCENT), Column("recent_share", "Recent", PERCENT)),
                  tuple(found["classes"])),
        ),
    )
