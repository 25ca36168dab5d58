"""The all-projects overview: each project's headline figures side by side, one row per project (a
project's model is only ever its own: the model columns name the project's latest version)."""
from __future__ import annotations

from dashboards import metrics
from dashboards.reports.base import ReportContext, accuracy_row, group_rows, sum_of
from dashboards.reports.labels import AGREEMENT_FIELDS, sum_agreement
from dashboards.reports.model import drift_summaries, model_summaries
from dashboards.tables import FLOAT, INT, PERCENT, Column, Figure, Report, Table

PROJECT_FIELDS = ("items", "labeled", "escalated", "gold_items", "gold_correct", *AGREEMENT_FIELDS)


def projects(ctx: ReportContext) -> Report:
    by_project = group_rows(ctx.item_stats(PROJECT_FIELDS), lambda r: r["project_id"])
    summary, _, latest = model_summaries(ctx)
    on_gold = {(s["project"], s["model_version"]): s for s in summary if s["reference"] == "gold"}
    psi: dict[str, float] = {}
    for row in drift_summaries(ctx)["summary"]:
        if row["psi"] is not None:
            psi[row["project"]] = max(psi.get(row["project"], 0.0), row["psi"])
    rows = []
    for project in ctx.scope.projects:
        group = by_project.get(project.pk, [])
        items, escalated = sum_of(group, "items"), sum_of(group, "escalated")
        gold = accuracy_row("project", project.name, sum_of(group, "gold_correct"), sum_of(group, "gold_items"))
        version = latest.get(project.pk, "")
        model = on_gold.get((project.name, version), {})
        rows.append({
            "project": project.name,
            "items": items,
            "labeled": sum_of(group, "labeled"),
            "escalation_rate": escalated / items if items else None,
            "gold_accuracy": gold["accuracy"],
            "gold_items": gold["n"],
            "agreement": metrics.percent_agreement_from_stats(sum_agreement(group)),
            "model_version": version,
            "macro_f1": model.get("macro_f1"),
            "psi": psi.get(project.name),
            "items_filter": {"project": project.slug},
            "dashboard": project.slug,
        })
    return Report(
        name="projects",
        title="Projects",
        description="Each project's headline figures; a project's model figures are those of its own latest "
        "model version.",
        headline=(
            Figure("projects", "Projects", len(rows), INT),
            Figure("items", "Items", sum(r["items"] for r in rows), INT),
        ),
        tables=(
            Table("projects", "Headline figures by project",
                  (Column("project", "Project"), Column("items", "Items", INT), Column("labeled", "Labelled", INT),
                   Column("escalation_rate", "Escalation rate", PERCENT),
                   Column("gold_accuracy", "Final labels correct on gold", PERCENT),
                   Column("gold_items", "Gold items", INT),
                   Column("agreement", "Crowd pairwise agreement", PERCENT), Column("model_version", "Latest model"),
                   Column("macro_f1", "Its macro F1 on gold", FLOAT), Column("psi", "Largest drift PSI", FLOAT)),
                  tuple(rows)),
        ),
    )
