"""Reports on the model: quality against gold and experts, and drift of its predictions."""
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
            classes = class_order(scope, seen)
            table = metrics.contingency_table(
                [(t, p, n) for t, c in confusion.items() for p, n in c.items()], classes
            )
            report = metrics.per_class_prf(table, classes)
            if report is None:
                continue
            summary.append({
                "model_version": version, "reference": reference, "n": report.n, "accuracy": report.accuracy,
                "macro_precision": report.macro_precision, "macro_recall": report.macro_recall, "macro_f1": report.macro_f1,
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
                   Column("macro_recall", "Macro recall", FLOAT), Column("macro_f1", "Macro F1", FLOAT)), tuple(summary)),
            Table("model_by_class", "By class",
                  (Column("model_version", "Model version"), Column("reference", "Against"), Column("label", "Class"),
                   Column("precision", "Precision", FLOAT), Column("recall", "Recall", FLOAT), Column("f1", "F1", FLOAT),
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


def _model_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = defaultdict(lambda: {"confidence": np.zeros(CONFIDENCE_BINS, dtype=np.int64), "predicted": Counter()})
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
        classes = class_order(scope, (ref or {}).get("predicted", {}), (rec or {}).get("predicted", {}))
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
    worst_all = max((p for s in summary for p in (s["psi_confidence"], s["psi_classes"]) if p is not None), default=None)
    window_note = (f"Reference {reference_days[0]} to {reference_days[1]}, recent {recent_days[0]} to {recent_days[1]} "
                   f"(by ingest day; the start of the date filter does not apply). Alert at PSI ≥ {threshold:g}.")
    return Report(
        name="drift",
        title="Drift",
        description="Whether the model's confidence and predicted classes in the last week differ from the four weeks before (population stability index).",
        headline=(Figure("psi", "Largest PSI", worst_all, FLOAT, note=f"alert at {threshold:g}"),),
        alerts=tuple(alerts),
        tables=(
            Table("drift", "Population stability index by model version",
                  (Column("model_version", "Model version"), Column("reference_items", "Reference items", INT),
                   Column("recent_items", "Recent items", INT), Column("psi_confidence", "PSI confidence", FLOAT),
                   Column("psi_classes", "PSI predicted class", FLOAT), Column("level", "Reading"), Column("alert", "Alert")),
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
