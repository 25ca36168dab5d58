"""Shared builders for the routing persistence tests: state is made through the real services."""

from __future__ import annotations

from typing import Any

import numpy as np

from labeling.models import Project
from labeling.services import items_ingest, project_create
from tests.memberships import members_everywhere

CLASSES = ("cat", "dog", "bird")


def make_project(slug: str = "pets", classes: tuple[str, ...] = CLASSES) -> Project:
    created = project_create(name=slug.title(), slug=slug, classes=list(classes))
    members_everywhere()
    return created


def item_row(external_id: str, probabilities: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"external_id": external_id, "data": {"text": f"text of {external_id}"}}
    if probabilities is not None:
        row["predictions"] = [{"model_version": "clf-1", "probabilities": probabilities}]
    row.update(extra)
    return row


def random_rows(
    n: int, *, seed: int = 7, prefix: str = "it", classes: tuple[str, ...] = CLASSES
) -> list[dict[str, Any]]:
    """Rows with seeded Dirichlet predictions: a mix of confident and unsure items."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        alpha = 0.3 if i % 2 else 3.0
        p = rng.dirichlet([alpha] * len(classes))
        p = np.round(p, 6)
        p[-1] = round(1.0 - float(p[:-1].sum()), 6)
        rows.append(item_row(f"{prefix}-{i}", {c: float(x) for c, x in zip(classes, p)}))
    return rows


def ingest(project: Project, rows: list[dict[str, Any]], actor: Any = None):
    return items_ingest(project=project, rows=rows, actor=actor)


CONFIDENT = {"cat": 0.97, "dog": 0.02, "bird": 0.01}
UNSURE = {"cat": 0.40, "dog": 0.35, "bird": 0.25}
