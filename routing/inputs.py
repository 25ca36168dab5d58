"""What routing reads to decide: engine inputs for many items at once in a fixed number of prepared
statements (items with their project and live policy, predictions, annotations, reliabilities) and each
item's work as routing plans it."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Count

from core.bulk import columns, model_from_row, model_value, one_of, prepared_cursor
from experts.models import Domain, Role
from labeling.models import Annotation, Item, Prediction, Project
from routing.decision_inputs import ordered_probabilities
from routing.engine.types import (
    AnnotationInput,
    AnnotatorReliability,
    ItemInput,
    PolicyConfig,
    PredictionInput,
)
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    EscalationPolicy,
    PolicyVersion,
)
from routing.models import AnnotatorReliability as AnnotatorReliabilityRow

# Items per batch when loading engine inputs: bounded memory, a fixed number of queries per batch.
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class RouteInput:
    """One item as loaded for routing: the row (to update), what the engine gets, and the item's work as
    routing plans it: its open slots (id, kind, status; soonest deadline first) and whether a review that
    was not cancelled exists."""

    item: Item
    item_input: ItemInput
    reliabilities: Mapping[int, AnnotatorReliability]
    open_slots: tuple[tuple[int, str, str], ...] = ()
    reviewed: bool = False


def chunked(values: Sequence[Any], size: int = CHUNK_SIZE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def route_inputs(*, item_ids: Iterable[int], lock: bool = False, locked_items: Sequence[Item] = ()) -> list[RouteInput]:
    """Engine inputs for the given items in five queries whatever their number (call with <= CHUNK_SIZE ids),
    with each item's work (RouteInput.open_slots, .reviewed); each item's project comes with its escalation
    policy and live version (`live_version_of`).

    With lock=True (inside a transaction) the item rows are locked, in id order, so two routings of the
    same item run one after the other and the second sees the annotations the first committed.
    `locked_items`: items the caller has already loaded as routing_item_sql reads them and locked in this
    transaction (a submit's assignment_locked); they are not read again.
    Hand-written, prepared SQL (every submit routes its item again): compiling the ORM's twins of these
    queries cost more than routing the item.
    """
    ids = sorted(set(item_ids))
    if not ids:
        return []
    held = {i.id: i for i in locked_items}
    missing = [i for i in ids if i not in held]
    items = sorted(
        [*(held[i] for i in ids if i in held), *(_items_for_routing(missing, lock=lock) if missing else ())],
        key=lambda i: i.id,
    )
    if not items:
        return []
    ids = [i.id for i in items]
    # The engine needs a few columns of each prediction and annotation: tuples, not model instances.
    predictions: dict[int, list[PredictionInput]] = defaultdict(list)
    annotations: dict[int, list[AnnotationInput]] = defaultdict(list)
    rows_of_predictions = prediction_rows(ids)
    of_items, params = one_of("item_id", ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, id, annotator_id, label, role FROM {Annotation._meta.db_table}"
            f" WHERE {of_items} ORDER BY item_id, submitted_at, id",
            params,
        )
        for item_id, annotation_id, annotator_id, label, role in cursor.fetchall():
            annotations[item_id].append(
                AnnotationInput(id=annotation_id, annotator_id=annotator_id, label=label, role=role)
            )
    work = _work_of(ids)
    classes_of = {i.id: tuple(i.project.class_names) for i in items}
    for item_id, prediction_id, model_version, probabilities in rows_of_predictions:
        predictions[item_id].append(
            PredictionInput(
                id=prediction_id,
                model_version=model_version,
                probabilities=ordered_probabilities(
                    model_value(Prediction, "probabilities", probabilities), classes_of[item_id]
                ),
            )
        )
    annotator_ids = {a.annotator_id for rows in annotations.values() for a in rows}
    reliabilities = reliabilities_for(
        project_ids={i.project_id for i in items},
        annotator_ids=annotator_ids,
        projects={i.project_id: i.project for i in items},
    )
    spent = project_labels_per_item({i.project_id for i in items if budget_set(i.project)})
    loaded = []
    for item in items:
        item_annotations = annotations.get(item.id, [])
        slots = work.get(item.id, ())
        item_input = ItemInput(
            item_id=item.id,
            classes=classes_of[item.id],
            predictions=tuple(predictions.get(item.id, ())),
            annotations=tuple(item_annotations),
            data=item.data,
            metadata=item.metadata,
            language=item.language,
            domain=item.domain.path if item.domain_id else "",
            crowd_overdue=crowd_overdue(slots),
            class_prior=class_prior_of(item.project),
            project_labels_per_item=spent.get(item.project_id),
            model_temperature=model_temperature_of(item.project),
        )
        project_reliabilities = reliabilities.get(item.project_id, {})
        used = {
            a.annotator_id: project_reliabilities[a.annotator_id]
            for a in item_annotations
            if a.annotator_id in project_reliabilities
        }
        loaded.append(
            RouteInput(
                item=item,
                item_input=item_input,
                reliabilities=used,
                open_slots=tuple((s.id, s.kind, s.status) for s in slots if s.status in OPEN_ASSIGNMENT_STATUSES),
                reviewed=any(s.kind == AssignmentKind.REVIEW and s.status != AssignmentStatus.CANCELLED for s in slots),
            )
        )
    return loaded


@dataclass(frozen=True)
class WorkSlot:
    """One of an item's slots as routing reads it (_work_of)."""

    id: int
    kind: str
    status: str
    assignee_id: int | None


def _work_of(item_ids: Sequence[int]) -> dict[int, list[WorkSlot]]:
    """item id -> the slots routing looks at, soonest deadline first: open ones, reviews not cancelled, and
    crowd offers that expired unclaimed (crowd_overdue). One prepared statement: every submit routes its
    item."""
    a = Assignment._meta.db_table
    open_statuses = "', '".join(s.value for s in OPEN_ASSIGNMENT_STATUSES)
    crowd, review = AssignmentKind.CROWD.value, AssignmentKind.REVIEW.value
    cancelled, expired = AssignmentStatus.CANCELLED.value, AssignmentStatus.EXPIRED.value
    of_items, params = one_of("item_id", item_ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, id, kind, status, assignee_id FROM {a} WHERE {of_items} AND"
            f" (status IN ('{open_statuses}') OR (kind = '{review}' AND status <> '{cancelled}')"
            f" OR (kind = '{crowd}' AND status = '{expired}' AND assignee_id IS NULL))"
            " ORDER BY due_at, id",
            params,
        )
        rows = cursor.fetchall()
    work: dict[int, list[WorkSlot]] = defaultdict(list)
    for item_id, *slot in rows:
        work[item_id].append(WorkSlot(*slot))
    return work


def crowd_overdue(slots: Iterable[WorkSlot]) -> bool:
    """Whether the crowd has let the item down: a crowd offer of it expired unclaimed at its SLA deadline
    (work.jobs.crowd_breaches_escalate expires them; a lease that runs out expires a slot someone held).
    Read from the slots at every routing, so the item stays with the experts once it went to them."""
    return any(
        s.kind == AssignmentKind.CROWD and s.status == AssignmentStatus.EXPIRED and s.assignee_id is None
        for s in slots
    )


def routing_item_sql() -> tuple[str, str]:
    """(select, from) reading items `it` as routing needs them: with the domain, the project, its escalation
    policy and the policy's live version (what select_related would give); routing_items_from_rows reads
    the rows back."""
    i, d, p = Item._meta.db_table, Domain._meta.db_table, Project._meta.db_table
    ep, pv = EscalationPolicy._meta.db_table, PolicyVersion._meta.db_table
    select = (
        f"{columns(Item, 'it')}, {columns(Domain, 'dom')}, {columns(Project, 'pr')},"
        f" {columns(EscalationPolicy, 'pol')}, {columns(PolicyVersion, 'v')}"
    )
    tables = (
        f"{i} it LEFT JOIN {d} dom ON dom.id = it.domain_id JOIN {p} pr ON pr.id = it.project_id"
        f" LEFT JOIN {ep} pol ON pol.project_id = pr.id LEFT JOIN {pv} v ON v.id = pol.live_version_id"
    )
    return select, tables


_ROUTING_MODELS = (Item, Domain, Project, EscalationPolicy, PolicyVersion)


def routing_items_from_rows(rows: Iterable[Sequence[Any]]) -> list[Item]:
    """Items from rows of routing_item_sql's columns, each with its domain, project, policy and live version
    loaded (None where there is none). Items of one project share one project object."""
    widths = [len(m._meta.concrete_fields) for m in _ROUTING_MODELS]
    bounds = [sum(widths[:k]) for k in range(len(widths) + 1)]
    projects: dict[int, Project] = {}
    items = []
    for row in rows:
        item_row, domain_row, project_row, policy_row, version_row = (
            row[bounds[k] : bounds[k + 1]] for k in range(len(widths))
        )
        item = model_from_row(Item, item_row)
        item.domain = model_from_row(Domain, domain_row) if item.domain_id is not None else None
        project = projects.get(item.project_id)
        if project is None:
            project = projects[item.project_id] = model_from_row(Project, project_row)
            policy = model_from_row(EscalationPolicy, policy_row) if policy_row[0] is not None else None
            if policy is not None:
                policy.project = project
                policy.live_version = (
                    model_from_row(PolicyVersion, version_row) if policy.live_version_id is not None else None
                )
            Project.escalation_policy.related.set_cached_value(project, policy)
        item.project = project
        items.append(item)
    return items


def _items_for_routing(ids: Sequence[int], *, lock: bool) -> list[Item]:
    """The items, in id order, as routing_items_from_rows gives them, in one prepared statement."""
    select, tables = routing_item_sql()
    condition, params = one_of("it.id", ids)
    sql = f"SELECT {select} FROM {tables} WHERE {condition} ORDER BY it.id"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE OF it"
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return routing_items_from_rows(cursor.fetchall())


def reliabilities_for(
    *, project_ids: Iterable[int], annotator_ids: Iterable[int], projects: Mapping[int, Project]
) -> dict[int, dict[int, AnnotatorReliability]]:
    """project id -> annotator id -> reliability, in one query; rows estimated for other classes are skipped."""
    annotator_ids = sorted(annotator_ids)
    if not annotator_ids:
        return {}
    result: dict[int, dict[int, AnnotatorReliability]] = defaultdict(dict)
    in_projects, project_params = one_of("project_id", sorted(project_ids))
    of_annotators, annotator_params = one_of("annotator_id", annotator_ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT {columns(AnnotatorReliabilityRow)} FROM {AnnotatorReliabilityRow._meta.db_table}"
            f" WHERE {in_projects} AND {of_annotators}",
            [*project_params, *annotator_params],
        )
        rows = [model_from_row(AnnotatorReliabilityRow, r) for r in cursor.fetchall()]
    for row in rows:
        if list(row.classes) != projects[row.project_id].class_names:
            continue
        result[row.project_id][row.annotator_id] = AnnotatorReliability(
            annotator_id=row.annotator_id,
            confusion=tuple(tuple(float(x) for x in r) for r in row.confusion),
            n_observations=float(row.n_observations),
        )
    return result


def prediction_rows(ids: Sequence[int]) -> list[tuple[int, int, str, Any]]:
    """(item id, prediction id, model version, probabilities as stored) of the items' predictions, each
    item's oldest first: what routing reads of them (route_inputs, and the batch path in routing.fresh)."""
    of_items, params = one_of("item_id", ids)
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT item_id, id, model_version, probabilities FROM {Prediction._meta.db_table}"
            f" WHERE {of_items} ORDER BY item_id, created_at, id",
            params,
        )
        return cursor.fetchall()


def budget_set(project: Project) -> bool:
    """Whether the project's live policy sets a budget (target_labels_per_item): only then does routing
    read the crowd labels spent per item (project_labels_per_item)."""
    version = live_version_of(project)
    return bool(version and version.config.get("target_labels_per_item"))


def project_labels_per_item(project_ids: Iterable[int]) -> dict[int, float]:
    """Crowd labels spent per item so far, by project: what a policy's budget (target_labels_per_item) is
    held to. Only for the projects asked for: a project without a budget never pays for these counts."""
    ids = sorted(project_ids)
    if not ids:
        return {}
    items = dict(
        Item.objects.filter(project_id__in=ids).values("project_id").annotate(n=Count("id")).values_list("project_id",
            "n")
    )
    crowd = dict(
        Annotation.objects.filter(item__project_id__in=ids, role=Role.CROWD)
        .values("item__project_id")
        .annotate(n=Count("id"))
        .values_list("item__project_id", "n")
    )
    return {p: round(crowd.get(p, 0) / items[p], 4) for p in ids if items.get(p)}


def model_temperature_of(project: Project) -> float | None:
    """The model's temperature the last refresh learned, while the live policy learns one; else None."""
    policy = getattr(project, "escalation_policy", None)
    version = live_version_of(project)
    if policy is None or version is None or not version.config.get("learn_model_temperature"):
        return None
    return policy.model_temperature


def class_prior_of(project: Project) -> tuple[float, ...]:
    """The project's learned class prior in its classes' order, or () when none was learned for these classes."""
    policy = getattr(project, "escalation_policy", None)
    stored = policy.class_prior if policy is not None else None
    if not stored or list(stored.get("classes", ())) != project.class_names:
        return ()
    return tuple(float(p) for p in stored["prior"])


def live_version_of(project: Project) -> PolicyVersion | None:
    """The project's live policy version as loaded with it (route_inputs joins it); None without a policy."""
    try:
        policy = project.escalation_policy
    except EscalationPolicy.DoesNotExist:
        return None
    return policy.live_version


# version id -> (the config it was built from, the PolicyConfig): version_config's per-process memory.
_VERSION_CONFIGS: dict[int, tuple[Any, PolicyConfig]] = {}
# More versions than any deployment routes by at once; past it the memory starts again.
_VERSION_CONFIGS_MAX = 256


def version_config(version: PolicyVersion) -> PolicyConfig:
    """The version's PolicyConfig, built once per process and reused while the stored config is the same.

    Every submit routes its item again: building the config from JSON and writing its canonical form for
    the decision's inputs_digest (which the PolicyConfig keeps once written) cost more than the engine's
    decision itself. Versions are immutable, but the reuse is checked against the stored config all the
    same, so a version edited in place (a shell, a migration) is never routed by its old fields."""
    found = _VERSION_CONFIGS.get(version.pk)
    if found is not None and found[0] == version.config:
        return found[1]
    stored = copy.deepcopy(version.config)
    # Built from a copy of its own: the rules' lists must not be the row's, which its holder may change.
    config = PolicyConfig.from_dict(copy.deepcopy(stored))
    if len(_VERSION_CONFIGS) >= _VERSION_CONFIGS_MAX:
        _VERSION_CONFIGS.clear()
    _VERSION_CONFIGS[version.pk] = (stored, config)
    return config
