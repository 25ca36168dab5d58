"""The shape every dashboard metric takes: named tables of plain values, headline figures and alerts.

The page renders the tables under the charts, the CSV download writes one table, and the JSON API returns
them all, so a number on a chart is always a number in a table. People appear as user ids in columns of
kind "annotator" until `name_annotators` replaces them: by name for staff, "Annotator N" otherwise.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

# The page shows at most this many rows of a table; the CSV download and the JSON API carry them all.
PAGE_ROWS = 50

# Column kinds: how the page formats a value (CSV and JSON carry the raw value).
TEXT, INT, FLOAT, PERCENT = "text", "int", "float", "percent"
DURATION, ANNOTATOR, DATE = "duration", "annotator", "date"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str = TEXT


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Mapping[str, Any], ...]
    note: str = ""

    @property
    def page_rows(self) -> tuple[Mapping[str, Any], ...]:
        return self.rows[:PAGE_ROWS]

    @property
    def truncated(self) -> bool:
        return len(self.rows) > PAGE_ROWS

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [{"key": c.key, "title": c.title, "kind": c.kind} for c in self.columns],
            "rows": [{c.key: json_value(row.get(c.key)) for c in self.columns} for row in self.rows],
            "note": self.note,
        }


@dataclass(frozen=True)
class Figure:
    """A headline number shown as a card above a report's charts."""

    key: str
    title: str
    value: Any
    kind: str = FLOAT
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A plotly figure (as built by dashboards.charts) and the table holding its numbers."""

    name: str
    title: str
    figure: Mapping[str, Any]
    table: str

    @property
    def figure_json(self) -> str:
        return json.dumps(self.figure, separators=(",", ":"))


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    headline: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    alerts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    charts: tuple[Chart, ...] = ()

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "title": self.title,
            "description": self.description,
            "headline": {f.key: json_value(f.value) for f in self.headline},
            "tables": {t.name: t.to_dict() for t in self.tables},
            "alerts": list(self.alerts),
            "notes": list(self.notes),
        }


def json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):  # NaN never reaches JSON
        return None
    return value


def annotator_ids(reports: Iterable[Report]) -> list[int]:
    ids = set()
    for report in reports:
        for table in report.tables:
            keys = [c.key for c in table.columns if c.kind == ANNOTATOR]
            for row in table.rows:
                ids.update(row[k] for k in keys if row.get(k) is not None)
    return sorted(ids)


def annotator_labels(ids: Sequence[int], *, names: Mapping[int, str] | None) -> dict[int, str]:
    """Labels for people: their names when `names` is given (staff), otherwise "Annotator N" numbered in
    id order over `ids`, so one person has one number everywhere on a page."""
    if names is not None:
        return {i: names.get(i, f"User {i}") for i in ids}
    return {i: f"Annotator {n}" for n, i in enumerate(sorted(ids), start=1)}


def name_annotators(report: Report, labels: Mapping[int, str]) -> Report:
    """The report with every annotator column's user id replaced by its label."""
    tables = []
    for table in report.tables:
        keys = [c.key for c in table.columns if c.kind == ANNOTATOR]
        if not keys:
            tables.append(table)
            continue
        rows = tuple({**row, **{k: labels.get(row[k], "") for k in keys if row.get(k) is not None}}
            for row in table.rows)
        tables.append(dataclasses.replace(table, rows=rows))
    return dataclasses.replace(report, tables=tuple(tables))


def link_items(report: Report, url: str, base: Mapping[str, str]) -> Report:
    """The report with `items_url` on every row that has an `items_filter`: the item search at `url` over
    the page's filters `base` narrowed by the row's (a row's date range is cut to the page's)."""
    tables = []
    for table in report.tables:
        rows = []
        for row in table.rows:
            if "items_filter" not in row:
                rows.append(row)
                continue
            params = {**base, **row["items_filter"]}
            if base.get("since") and params.get("since"):
                params["since"] = max(base["since"], params["since"])
            if base.get("until") and params.get("until"):
                params["until"] = min(base["until"], params["until"])
            rows.append({**row, "items_url": f"{url}?{urlencode(sorted(params.items()))}"})
        tables.append(dataclasses.replace(table, rows=tuple(rows)))
    return dataclasses.replace(report, tables=tuple(tables))


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.title for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if row.get(c.key) is None else json_value(row.get(c.key)) for c in table.columns])
    return out.getvalue()
