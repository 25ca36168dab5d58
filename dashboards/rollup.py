"""Snapshot rows from per-item facts: pure code, no ORM (services.py reads the facts and writes the rows).

The dashboard never scans annotations on a request. A scheduled job (see services.snapshots_refresh)
turns each item into an `ItemFacts` and sums the items of one project, ingest day (UTC), domain and
route into one `ItemDayStats` row, each annotator's work on them into `AnnotatorDayStats` rows, and the
pairs of crowd labels given to the same item into `CrowdPairDayStats` rows (Cohen's kappa between
annotators).
Every figure stored is additive (a count, a sum, a histogram, `metrics.AgreementStats`), so any filter
the page offers (a range of days, a domain subtree, a route) is answered exactly by summing rows.

Terms used everywhere on the dashboard:
- route: how an item's final label was decided, or where the item waits: "auto" (the model's label
  accepted), "crowd" (crowd consensus, or waiting for crowd labels), "expert" (an expert's label, a
  gold label, or waiting for an expert), "pending" (not routed yet).
- escalated: routing sent the item to an expert at least once (a decision with outcome "expert").
- disagreement item: its crowd labels are not all the same.
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dashboards import metrics

ROUTES = ("auto", "crowd", "expert")
PENDING = "pending"
ALL_ROUTES = (*ROUTES, PENDING)
ROLE_CROWD = "crowd"
ROLE_EXPERT = "expert"
CONFIDENCE_BINS = 10

_SOURCE_ROUTE = {"model": "auto", "consensus": "crowd", "expert": "expert", "gold": "expert"}
_STATUS_ROUTE = {"in_crowd_review": "crowd", "escalated": "expert"}


def route_of(status: str, final_source: str) -> str:
    """The item's route (see the module docstring) from its status and final source."""
    if final_source:
        return _SOURCE_ROUTE.get(final_source, PENDING)
    return _STATUS_ROUTE.get(status, PENDING)


@dataclass(frozen=True)
class LabelFact:
    """One annotator's labels of one class on one item (usually count 1), and the time they logged."""

    annotator_id: int
    role: str
    label: str
    count: int = 1
    time_ms: int | None = None


@dataclass(frozen=True)
class PredictionFact:
    model_version: str
    top_label: str
    top_probability: float


@dataclass(frozen=True)
class ItemFacts:
    """Everything the dashboard counts about one item."""

    project_id: int
    day: dt.date
    domain_id: int | None
    status: str
    final_label: str = ""
    final_source: str = ""
    seconds_to_label: float | None = None
    labels: tuple[LabelFact, ...] = ()
    gold: str | None = None
    escalated: bool = False
    # The label routing would have given just before the first escalation: the posterior's top label.
    pre_escalation_label: str | None = None
    predictions: tuple[PredictionFact, ...] = ()
    # Expert work done with a due date: was it completed by then? None: no such work.
    sla_met: bool | None = None

    @property
    def route(self) -> str:
        return route_of(self.status, self.final_source)

    @property
    def expert_label(self) -> str | None:
        return self.final_label if self.final_source == "expert" and self.final_label else None

    @property
    def crowd_label_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for fact in self.labels:
            if fact.role == ROLE_CROWD:
                counts[fact.label] += fact.count
        return counts

    @property
    def disagreement(self) -> bool:
        return len(self.crowd_label_counts) > 1


# Integer columns of ItemDayStats, in the order the model declares them.
ITEM_COUNTERS = (
    "items", "labeled", "escalated", "crowd_labels", "expert_labels",
    "agreement_items", "agreement_labels", "agreement_pairs", "agreement_agreeing",
    "gold_items", "gold_correct", "gold_crowd_labels", "gold_expert_labels",
    "escalation_labelled", "escalation_compared", "escalation_agreed", "escalation_with_gold",
    "escalation_pre_correct", "escalation_expert_correct", "escalation_fixed", "escalation_broken",
    "sla_completed", "sla_met",
)
ITEM_FLOATS = ("agreement_item_sum", "agreement_disagreement_sum")
ITEM_JSON = ("statuses", "agreement_class_totals", "seconds_to_label", "time_per_item", "gold_by_class",
    "model_versions")
ANNOTATOR_COUNTERS = (
    "annotations", "items", "time_ms", "escalated_items", "disagreement_items", "gold_items", "gold_correct",
)


def _cell() -> dict[str, Any]:
    return {
        **{name: 0 for name in ITEM_COUNTERS},
        **{name: 0.0 for name in ITEM_FLOATS},
        "statuses": Counter(),
        "seconds_to_label": [],
        "time_per_item": defaultdict(list),
        "crowd_counts": [],
        "gold_by_class": defaultdict(lambda: [0, 0]),
        "model_versions": defaultdict(_model_cell),
    }


def _model_cell() -> dict[str, Any]:
    return {
        "confidence": [0] * CONFIDENCE_BINS,
        "predicted": Counter(),
        "gold": defaultdict(Counter),
        "expert": defaultdict(Counter),
    }


def _confidence_bin(p: float) -> int:
    # Same bins as metrics.confidence_histogram: floor(p * 10), 1.0 in the last.
    return min(int(np.floor(p * CONFIDENCE_BINS)), CONFIDENCE_BINS - 1)


def _add_item(cell: dict[str, Any], item: ItemFacts) -> None:
    cell["items"] += 1
    cell["statuses"][item.status] += 1
    labeled = bool(item.final_label)
    cell["labeled"] += labeled
    cell["escalated"] += item.escalated
    if item.seconds_to_label is not None:
        cell["seconds_to_label"].append(item.seconds_to_label)

    crowd_labels = sum(f.count for f in item.labels if f.role == ROLE_CROWD)
    expert_labels = sum(f.count for f in item.labels if f.role != ROLE_CROWD)
    cell["crowd_labels"] += crowd_labels
    cell["expert_labels"] += expert_labels
    time_by_role: dict[str, int] = {}
    for fact in item.labels:
        if fact.time_ms is not None:
            time_by_role[fact.role] = time_by_role.get(fact.role, 0) + fact.time_ms
    for role, ms in time_by_role.items():
        cell["time_per_item"][role].append(ms / 1000)
    crowd = item.crowd_label_counts
    if sum(crowd.values()) >= 2:
        cell["crowd_counts"].append(crowd)

    if item.gold is not None and labeled:
        correct = item.final_label == item.gold
        cell["gold_items"] += 1
        cell["gold_correct"] += correct
        cell["gold_by_class"][item.gold][0] += 1
        cell["gold_by_class"][item.gold][1] += correct
        cell["gold_crowd_labels"] += crowd_labels
        cell["gold_expert_labels"] += expert_labels

    expert = item.expert_label
    if item.escalated and expert is not None:
        value = metrics.escalation_value(
            [item.pre_escalation_label], [expert], [item.gold] if item.gold is not None else None
        )
        cell["escalation_labelled"] += value.escalated
        cell["escalation_compared"] += value.compared
        cell["escalation_agreed"] += value.agreed
        cell["escalation_with_gold"] += value.with_gold
        cell["escalation_pre_correct"] += value.pre_correct
        cell["escalation_expert_correct"] += value.expert_correct
        cell["escalation_fixed"] += value.fixed
        cell["escalation_broken"] += value.broken

    if item.sla_met is not None:
        cell["sla_completed"] += 1
        cell["sla_met"] += item.sla_met

    for prediction in item.predictions:
        model = cell["model_versions"][prediction.model_version]
        model["confidence"][_confidence_bin(prediction.top_probability)] += 1
        model["predicted"][prediction.top_label] += 1
        if item.gold is not None:
            model["gold"][item.gold][prediction.top_label] += 1
        if expert is not None:
            model["expert"][expert][prediction.top_label] += 1


def _histogram(seconds: Sequence[float]) -> dict[str, int]:
    bins, counts = np.unique(metrics.duration_bins(seconds), return_counts=True)
    return {str(int(b)): int(n) for b, n in zip(bins, counts, strict=True)}


def _finish(cell: dict[str, Any], classes: Sequence[str]) -> None:
    """Turn the per-item lists gathered in a cell into its stored sums, with one numpy pass each."""
    cell["seconds_to_label"] = _histogram(cell["seconds_to_label"])
    cell["time_per_item"] = {role: _histogram(seconds) for role, seconds in cell["time_per_item"].items()}
    crowd = cell.pop("crowd_counts")
    labels = set().union(*crowd) if crowd else set()
    known = list(classes) + sorted(labels - set(classes))
    stats = metrics.agreement_stats([[counts.get(c, 0) for c in known] for counts in crowd], known)
    cell["agreement_items"] = stats.items
    cell["agreement_labels"] = stats.labels
    cell["agreement_pairs"] = stats.pairs
    cell["agreement_agreeing"] = stats.agreeing
    cell["agreement_item_sum"] = stats.item_agreement_sum
    cell["agreement_disagreement_sum"] = stats.disagreement_sum
    cell["agreement_class_totals"] = dict(stats.class_totals)


def _plain(value: Any) -> Any:
    """Counters and defaultdicts to plain JSON-ready dicts, with string keys."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class PartitionRows:
    """Rows for ItemDayStats and AnnotatorDayStats, as field dicts."""

    items: list[dict[str, Any]] = field(default_factory=list)
    annotators: list[dict[str, Any]] = field(default_factory=list)
    crowd_pairs: list[dict[str, Any]] = field(default_factory=list)


def partition_rows(facts: Iterable[ItemFacts], classes: Mapping[int, Sequence[str]]) -> PartitionRows:
    """Sum items into one row per (project, day, domain, route), annotators' work into one row per
    (project, day, domain, annotator, role), and pairs of crowd labels on the same item into one row per
    (project, day, domain, route, annotator a < b, label a, label b). `classes` maps project id to its
    class order."""
    cells: dict[tuple, dict[str, Any]] = {}
    people: dict[tuple, dict[str, int]] = {}
    pairs: Counter[tuple] = Counter()
    for item in facts:
        key = (item.project_id, item.day, item.domain_id, item.route)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = _cell()
        _add_item(cell, item)
        for pair in crowd_label_pairs(item):
            pairs[(*key, *pair)] += 1

        seen: set[tuple[int, str]] = set()
        disagreement = item.disagreement
        for fact in item.labels:
            person_key = (item.project_id, item.day, item.domain_id, fact.annotator_id, fact.role)
            person = people.get(person_key)
            if person is None:
                person = people[person_key] = dict.fromkeys(ANNOTATOR_COUNTERS, 0)
            person["annotations"] += fact.count
            person["time_ms"] += fact.time_ms or 0
            if item.gold is not None:
                person["gold_items"] += fact.count
                person["gold_correct"] += fact.count if fact.label == item.gold else 0
            if (fact.annotator_id, fact.role) not in seen:
                seen.add((fact.annotator_id, fact.role))
                person["items"] += 1
                person["escalated_items"] += item.escalated
                person["disagreement_items"] += disagreement

    rows = PartitionRows()
    for (project_id, day, domain_id, route), cell in cells.items():
        _finish(cell, classes.get(project_id, ()))
        rows.items.append({
            "project_id": project_id, "day": day, "domain_id": domain_id, "route": route,
            **{name: cell[name] for name in ITEM_COUNTERS},
            **{name: cell[name] for name in ITEM_FLOATS},
            **{name: _plain(cell[name]) for name in ITEM_JSON},
        })
    for (project_id, day, domain_id, annotator_id, role), person in people.items():
        rows.annotators.append({
            "project_id": project_id, "day": day, "domain_id": domain_id, "annotator_id": annotator_id,
            "role": role, **person,
        })
    for (project_id, day, domain_id, route, a, b, label_a, label_b), n in pairs.items():
        rows.crowd_pairs.append({
            "project_id": project_id, "day": day, "domain_id": domain_id, "route": route, "annotator_a_id": a,
            "annotator_b_id": b, "label_a": label_a, "label_b": label_b, "pairs": n,
        })
    return rows


def crowd_label_pairs(item: ItemFacts) -> Iterator[tuple[int, int, str, str]]:
    """(annotator a, annotator b, a's label, b's label) for every two crowd labels of the item by different
    annotators, a < b; an annotator who labelled the item twice pairs each label."""
    labels = sorted((f.annotator_id, f.label) for f in item.labels if f.role == ROLE_CROWD for _ in range(f.count))
    for (a, label_a), (b, label_b) in itertools.combinations(labels, 2):
        if a != b:
            yield a, b, label_a, label_b


def week_of(day: dt.date) -> dt.date:
    """The Monday of `day`'s week (ISO weeks, as TruncWeek)."""
    return day - dt.timedelta(days=day.weekday())


def _add_json(a: Any, b: Any) -> Any:
    """Sum two stored JSON values of the same shape: maps key by key, lists element by element."""
    if isinstance(a, Mapping):
        merged = dict(a)
        for key, value in b.items():
            merged[key] = _add_json(merged[key], value) if key in merged else value
        return merged
    if isinstance(a, list):
        if len(a) != len(b):
            raise ValueError(f"cannot add lists of lengths {len(a)} and {len(b)}")
        return [_add_json(x, y) for x, y in zip(a, b, strict=True)]
    return a + b


def week_rows(day_rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """ItemWeekStats rows from ItemDayStats rows (field dicts with "day"): one per project, week, domain
    and route, each the sum of its days."""
    weeks: dict[tuple, dict[str, Any]] = {}
    for row in day_rows:
        key = (row["project_id"], week_of(row["day"]), row["domain_id"], row["route"])
        total = weeks.get(key)
        if total is None:
            weeks[key] = {
                "project_id": key[0], "week": key[1], "domain_id": key[2], "route": key[3],
                **{name: row[name] for name in (*ITEM_COUNTERS, *ITEM_FLOATS, *ITEM_JSON)},
            }
            continue
        for name in (*ITEM_COUNTERS, *ITEM_FLOATS):
            total[name] += row[name]
        for name in ITEM_JSON:
            total[name] = _add_json(total[name], row[name])
    return list(weeks.values())
