"""Routing's batch path for fresh items (no annotations, no work, at most one prediction; what ingest routes):
read them lean, decide them over arrays (routing.engine.batch, the twin of `evaluate` for this case), and
write the decisions and the work they ask for by COPY, without a model instance or an ItemInput per item.

Everything the batch path does not cover goes back to `routing.services.items_route`'s per-item path, which
decides exactly as before: items with annotations, slots or several predictions, a prediction the engine
refuses, a policy with feature rules or a metadata conflict field, and decisions that escalate (an expert
slot needs the roster ranked per item). See docs/routing.md, "The batch path".
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from core.bulk import datetime_value, insert_rows, insert_rows_returning_ids, model_value, one_of, prepared_cursor
from experts.models import Domain
from labeling.models import Annotation, Item, Prediction, Project
from labeling.signals import CreatedItem
from routing import inputs
from routing.decision_inputs import ordered_probabilities
from routing.engine.batch import (
    FreshInputs,
    FreshItems,
    batch_covers,
    evaluate_fresh,
    prediction_usable,
    project_usable,
)
from routing.engine.types import Outcome, PolicyConfig, Stage
from routing.models import Assignment, AssignmentKind, AssignmentStatus, PolicyVersion, RoutingDecision
from routing.offers import review_sampled

DECISION_FIELDS = (
    "item", "policy_version", "stage", "inputs", "inputs_digest", "outcome", "final_label", "final_source",
    "confidence", "posterior", "reasons", "signals", "labels_requested", "actor",
)
SLOT_FIELDS = ("item", "project", "decision", "kind", "assignee", "status", "due_at", "created_at")


@dataclass
class FreshResult:
    """What the batch path routed in one chunk, and what it leaves to the per-item path."""

    leftover: list[int] = field(default_factory=list)
    routed: list[tuple[int, int]] = field(default_factory=list)  # (item id, decision id)
    # (item id, outcome, final label, final source, confidence): what items_route sets on the item
    outcomes: list[tuple[int, str, str, str, float | None]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Lean:
    id: int
    project_id: int
    data: Any
    metadata: Any
    language: str
    domain: str


def _lean_items(ids: Sequence[int]) -> list[_Lean]:
    """The items (locked, in id order, as route_inputs locks them) with the columns the engine reads."""
    i, d = Item._meta.db_table, Domain._meta.db_table
    of_items, params = one_of("it.id", ids)
    sql = (
        f"SELECT it.id, it.project_id, it.data, it.metadata, it.language, dom.path FROM {i} it"
        f" LEFT JOIN {d} dom ON dom.id = it.domain_id WHERE {of_items} ORDER BY it.id"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF it"
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        _Lean(item_id, project_id, model_value(Item, "data", data), model_value(Item, "metadata", metadata),
            language, path or "")
        for item_id, project_id, data, metadata, language, path in rows
    ]


def _busy(ids: Sequence[int]) -> set[int]:
    """Items with an annotation or any slot at all: not fresh."""
    of_items, params = one_of("item_id", ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id FROM {Annotation._meta.db_table} WHERE {of_items}"
            f" UNION SELECT item_id FROM {Assignment._meta.db_table} WHERE {of_items}",
            [*params, *params],
        )
        return {item_id for (item_id,) in cursor.fetchall()}


def _predictions(ids: Sequence[int]) -> dict[int, list[tuple[int, str, Any]]]:
    found: dict[int, list[tuple[int, str, Any]]] = {}
    for item_id, prediction_id, model_version, probabilities in inputs.prediction_rows(ids):
        found.setdefault(item_id, []).append(
            (prediction_id, model_version, model_value(Prediction, "probabilities", probabilities))
        )
    return found


def _as_stored(value: Any) -> bool:
    """Whether `value` reads back from a JSON column as it is (up to what canonical JSON equates, such as
    1e20 and 10**20): JSON types with string keys and finite numbers. A Python caller's int keys or tuples
    come back as strings and lists: such items are read back like any other."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(k) is str and _as_stored(v) for k, v in value.items())
    if kind is list:
        return all(_as_stored(v) for v in value)
    return False


def _given(ids: Sequence[int], created: Mapping[int, CreatedItem]) -> tuple[
    list[_Lean], set[int], dict[int, list[tuple[int, str, Any]]]
]:
    """What `_lean_items`, `_busy` and `_predictions` would read of `ids`, items this transaction created,
    taken from ingest's own values instead (no other transaction sees these rows yet: nothing to lock)."""
    items, busy, predictions = [], set(), {}
    for item_id in ids:
        c = created[item_id]
        items.append(_Lean(item_id, c.project_id, c.data, c.metadata, c.language, c.domain))
        if c.annotated:
            busy.add(item_id)
        if c.predictions:
            predictions[item_id] = [(pid, version, probabilities) for pid, _, version, probabilities in c.predictions]
    return items, busy, predictions


def fresh_route(
    *,
    ids: Sequence[int],
    stage: Stage,
    actor_id: int | None,
    version_of: Callable[[Project], PolicyVersion],
    configs: dict[int, PolicyConfig],
    now: dt.datetime,
    created: Mapping[int, CreatedItem] | None = None,
) -> FreshResult:
    """Route the fresh ones among `ids` (one chunk, at most inputs.CHUNK_SIZE) by the batch path and write
    their decisions, item states and slots; the rest are returned in `leftover` for the per-item path.
    `version_of(project)`: the policy version that routes the project's items (items_route resolves it).
    `created`: items this transaction inserted, as ingest wrote them (see items_route); the others are read."""
    result = FreshResult()
    created = created or {}
    # Probabilities need no such check: the usable ones (prediction_usable, below) are kept as given.
    given_ids = [i for i in ids if i in created and _as_stored(created[i].data) and _as_stored(created[i].metadata)]
    read_ids = sorted(set(ids) - set(given_ids)) if given_ids else ids
    items, busy, predictions = _given(given_ids, created)
    if read_ids:
        items = sorted([*items, *_lean_items(read_ids)], key=lambda item: item.id)
        busy |= _busy(read_ids)
        predictions.update(_predictions(read_ids))
    result.leftover += sorted(set(ids) - {i.id for i in items})
    by_project: dict[int, list[_Lean]] = {}
    for item in items:
        if item.id in busy or len(predictions.get(item.id, ())) > 1:
            result.leftover.append(item.id)
        else:
            by_project.setdefault(item.project_id, []).append(item)
    if not by_project:
        return result
    projects = Project.objects.select_related("escalation_policy__live_version").in_bulk(list(by_project))
    decision_rows: list[tuple[Any, ...]] = []
    slots: list[tuple[int, int, int, str, dt.datetime]] = []  # (item, project, decision row index, kind, due)
    for project_id, members in by_project.items():
        project = projects[project_id]
        version = version_of(project)
        if version.id not in configs:
            configs[version.id] = inputs.version_config(version)
        config = configs[version.id]
        classes = tuple(project.class_names)
        class_prior = inputs.class_prior_of(project)
        temperature = inputs.model_temperature_of(project)
        if not batch_covers(config) or not project_usable(classes, class_prior, temperature):
            result.leftover += [i.id for i in members]
            continue
        taken, probabilities = [], []
        for item in members:
            rows = predictions.get(item.id)
            if rows:
                values = ordered_probabilities(rows[0][2], classes)
                if not prediction_usable(values, classes):
                    result.leftover.append(item.id)
                    continue
                probabilities.append(values)
            else:
                probabilities.append(None)
            taken.append(item)
        decisions = evaluate_fresh(
            FreshItems.build(classes, [i.id for i in taken], probabilities, temperature), config
        )
        spent = inputs.project_labels_per_item([project_id]) if inputs.budget_set(project) else {}
        documents = FreshInputs(config, classes, class_prior=class_prior,
            project_labels_per_item=spent.get(project_id), model_temperature=temperature)
        due_at = datetime_value(now + dt.timedelta(hours=config.sla_hours))
        for item, values, decision in zip(taken, probabilities, decisions):
            if decision.outcome == Outcome.EXPERT:
                result.leftover.append(item.id)
                continue
            prediction = None
            if values is not None:
                prediction_id, model_version, _ = predictions[item.id][0]
                prediction = (prediction_id, model_version, values)
            stored, digest = documents.documents(item.id, prediction, item.data, item.metadata, item.language,
                item.domain)
            index = len(decision_rows)
            decision_rows.append((
                item.id, version.id, stage.value, stored, digest, decision.outcome.value, decision.final_label,
                decision.final_source, decision.confidence, json.dumps(dict(decision.posterior)),
                json.dumps([{"code": r.code, "evidence": r.evidence} for r in decision.reasons]),
                json.dumps(dict(decision.signals)), decision.labels_requested, actor_id,
            ))
            result.outcomes.append(
                (item.id, decision.outcome.value, decision.final_label, decision.final_source, decision.confidence)
            )
            result.counts[decision.outcome.value] += 1
            if decision.outcome == Outcome.CROWD:
                slots += [(item.id, project_id, index, AssignmentKind.CROWD.value, due_at)] * decision.labels_requested
            elif review_sampled(item_id=item.id, rate=project.review_sample_rate):
                slots.append((item.id, project_id, index, AssignmentKind.REVIEW.value, due_at))
    decision_ids = insert_rows_returning_ids(RoutingDecision, DECISION_FIELDS, decision_rows, now=now)
    result.routed = [(row[0], pk) for row, pk in zip(decision_rows, decision_ids)]
    stamp = datetime_value(now)
    offered = AssignmentStatus.OFFERED.value
    insert_rows(Assignment, SLOT_FIELDS, [
        (item_id, project_id, decision_ids[index], kind, None, offered, due, stamp)
        for item_id, project_id, index, kind, due in slots
    ], now=now)
    return result

