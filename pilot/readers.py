"""The pilot's input files: judgments, gold, workers and predictions as CSV, read into `PilotData`
(formats: docs/pilot.md). Every error names the file, row and field."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

CROWD = "crowd"
EXPERT = "expert"
ROLES = (CROWD, EXPERT)
# The model version named in the PredictionInput the replay builds from --predictions.
PILOT_MODEL_VERSION = "pilot"

CsvSource = str | os.PathLike | TextIO


class PilotDataError(ValueError):
    """A pilot input file is malformed; the message names the file, row and field."""


@dataclass(frozen=True)
class Worker:
    role: str = CROWD
    cost: float | None = None  # None: 1 for crowd, the policy's expert_cost for experts


@dataclass(frozen=True)
class History:
    """Everything the replay may look at. Gold labels are deliberately not part of it.

    `judgments[n]` are the (worker, label) pairs of `items[n]`, in the order they are revealed.
    """

    classes: tuple[str, ...]
    items: tuple[str, ...]
    judgments: tuple[tuple[tuple[str, str], ...], ...]
    workers: Mapping[str, Worker] = field(default_factory=dict)
    predictions: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def role(self, worker: str) -> str:
        known = self.workers.get(worker)
        return known.role if known else CROWD

    def shuffled(self, rng: np.random.Generator) -> History:
        """The same history with each item's judgments in a random order (items keep their order)."""
        judgments = tuple(tuple(js[i] for i in rng.permutation(len(js))) for js in self.judgments)
        return dataclasses.replace(self, judgments=judgments)

    @property
    def n_judgments(self) -> int:
        return sum(len(js) for js in self.judgments)


@dataclass(frozen=True)
class PilotData:
    history: History
    gold: Mapping[str, str]


# ---------------------------------------------------------------------------------------------------------
# Reading the files


def _open(source: CsvSource) -> tuple[TextIO, str, bool]:
    if isinstance(source, (str, os.PathLike)):
        return open(source, newline="", encoding="utf-8-sig"), os.fspath(source), True
    return source, getattr(source, "name", "<stream>"), False


def _rows(source: CsvSource, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str], list[str]]]:
    """(row number as a spreadsheet shows it, row, header) for every data row; checks the header."""
    handle, name, close = _open(source)
    try:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise PilotDataError(
                f"{name}: missing column(s) {', '.join(missing)} (header: {', '.join(header) or 'empty'})"
            )
        reader.fieldnames = header
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise PilotDataError(f"{name} row {number}: more fields than the header has")
            yield number, {k: (v or "").strip() for k, v in row.items()}, header
    except UnicodeDecodeError as error:
        raise PilotDataError(f"{name}: not UTF-8 text ({error})") from error
    finally:
        if close:
            handle.close()


def _value(name: str, number: int, row: Mapping[str, str], column: str) -> str:
    value = row[column]
    if not value:
        raise PilotDataError(f"{name} row {number}: {column} is empty")
    return value


def _source_name(source: CsvSource) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")


def read_judgments(source: CsvSource) -> list[tuple[str, str, str]]:
    """(item, worker, label) rows of an `item,worker,label` CSV, in file order."""
    name = _source_name(source)
    out = []
    for number, row, _ in _rows(source, ("item", "worker", "label")):
        out.append(tuple(_value(name, number, row, c) for c in ("item", "worker", "label")))
    if not out:
        raise PilotDataError(f"{name}: no judgments")
    return out


def read_gold(source: CsvSource) -> dict[str, str]:
    """item -> label from an `item,label` CSV; an item listed twice is an error."""
    name = _source_name(source)
    gold: dict[str, str] = {}
    for number, row, _ in _rows(source, ("item", "label")):
        item, label = _value(name, number, row, "item"), _value(name, number, row, "label")
        if item in gold:
            raise PilotDataError(f"{name} row {number}: item {item!r} is listed twice")
        gold[item] = label
    return gold


def read_workers(source: CsvSource) -> dict[str, Worker]:
    """worker -> Worker from a `worker,role[,cost]` CSV; role is crowd or expert, cost a positive number."""
    name = _source_name(source)
    workers: dict[str, Worker] = {}
    for number, row, header in _rows(source, ("worker", "role")):
        worker, role = _value(name, number, row, "worker"), _value(name, number, row, "role").lower()
        if role not in ROLES:
            raise PilotDataError(f"{name} row {number}: role {row['role']!r} must be crowd or expert")
        if worker in workers:
            raise PilotDataError(f"{name} row {number}: worker {worker!r} is listed twice")
        cost = None
        if "cost" in header and row["cost"]:
            cost = _number(name, number, "cost", row["cost"])
            if cost <= 0:
                raise PilotDataError(f"{name} row {number}: cost must be positive, got {row['cost']!r}")
        workers[worker] = Worker(role=role, cost=cost)
    return workers


def read_predictions(source: CsvSource, classes: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """item -> probabilities in `classes` order from an `item,<class>,<class>...` CSV.

    Columns named by a class are read (every class needs one); other columns are ignored.
    Probabilities must be finite and ≥ 0 with a positive sum; they are renormalised to sum 1.
    """
    name = _source_name(source)
    predictions: dict[str, tuple[float, ...]] = {}
    for number, row, header in _rows(source, ("item",)):
        if number == 2:
            missing = [c for c in classes if c not in header]
            if missing:
                raise PilotDataError(f"{name}: no column for class(es) {', '.join(missing)}")
        item = _value(name, number, row, "item")
        if item in predictions:
            raise PilotDataError(f"{name} row {number}: item {item!r} is listed twice")
        values = []
        for c in classes:
            p = _number(name, number, c, row[c])
            if p < 0:
                raise PilotDataError(f"{name} row {number}: {c} is negative ({row[c]})")
            values.append(p)
        total = math.fsum(values)
        if total <= 0:
            raise PilotDataError(f"{name} row {number}: probabilities sum to 0")
        predictions[item] = tuple(v / total for v in values)
    return predictions


def _number(name: str, number: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PilotDataError(f"{name} row {number}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PilotDataError(f"{name} row {number}: {column} {text!r} is not a finite number")
    return value


def class_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Classes sorted numerically when every label is an integer ("2" before "10"), else as text."""
    unique = set(labels)
    if all(re.fullmatch(r"-?\d+", label) for label in unique):
        return tuple(sorted(unique, key=int))
    return tuple(sorted(unique))


def load_pilot_data(
    *,
    judgments: CsvSource,
    gold: CsvSource,
    predictions: CsvSource | None = None,
    workers: CsvSource | None = None,
) -> PilotData:
    """Read the pilot's CSV files (docs/pilot.md). Classes are every label in judgments and gold.

    Items are those with judgments (first-seen order) then those with only a prediction. A gold label
    for an item with neither is ignored: there is nothing to route.
    """
    rows = read_judgments(judgments)
    gold_labels = read_gold(gold)
    classes = class_order([label for _, _, label in rows] + list(gold_labels.values()))
    if len(classes) < 2:
        raise PilotDataError(f"{_source_name(judgments)}: judgments and gold use only one class ({classes[0]!r})")
    by_item: dict[str, list[tuple[str, str]]] = {}
    for item, worker, label in rows:
        by_item.setdefault(item, []).append((worker, label))
    probabilities = read_predictions(predictions, classes) if predictions is not None else {}
    for item in probabilities:
        by_item.setdefault(item, [])
    roster = read_workers(workers) if workers is not None else {}
    history = History(
        classes=classes,
        items=tuple(by_item),
        judgments=tuple(tuple(js) for js in by_item.values()),
        workers=roster,
        predictions=probabilities,
    )
    return PilotData(history=history, gold={i: g for i, g in gold_labels.items() if i in by_item})
