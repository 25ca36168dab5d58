"""Writes of labeling data: projects, item ingest (API, files, commands) and the audit log.

Ingest rules (the public contract, see README "Wire format"):

* Rows are validated first, all of them, by the pure `labeling.validation`; any error rejects the whole
  batch (`IngestValidationError` listing every error) before anything is written.
* Idempotent by `external_id` within a project. A re-sent item updates `data`, `metadata`, `domain` and
  `language` only where the row gives a value that differs from the stored one (an absent optional field
  leaves the stored value alone); `gold` given sets or replaces the gold label (absent or null leaves it).
* Predictions are unique per (item, model_name, model_version): a known one is skipped, never overwritten;
  a new model version is added beside the old ones.
* Annotations in rows (the export format, so exports round-trip) are added unless the same annotator's
  annotation with the same label and `submitted_at` already exists (without `submitted_at`: the same
  annotator and label); unknown annotator usernames become inactive users with unusable passwords.
  Importing annotations does not change an item's status or final label: routing decides those.
* Set-based: per chunk of rows one query finds existing items, and bulk inserts/updates write; no per-row
  queries.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.audit import actor_or_none, audit_record
from core.bulk import insert_rows_returning_ids, json_value, select_in
from experts.models import Domain
from labeling.formats import read_rows
from labeling.models import Annotation, DataType, GoldLabel, Item, Prediction, Project
from labeling.presentation import field_visibility_normalised, field_visibility_problems
from labeling.signals import CreatedItem, items_ingested
from labeling.validation import (
    ItemRow,
    RowError,
    RowValidator,
    domain_ancestors,
    normalise_classes,
    validate_rows,
)

INGEST_CHUNK_SIZE = 2000
MAX_REPORTED_ERRORS = 1000
GOLD_PROVENANCE_IMPORT = "import"
ITEM_INSERT_FIELDS = ("project_id", "external_id", "data", "metadata", "domain_id", "language")
PREDICTION_INSERT_FIELDS = ("item_id", "model_name", "model_version", "probabilities")
EMPTY_OBJECT = json_value({})


class IngestValidationError(Exception):
    """The batch was rejected; nothing was written. `errors` holds at most MAX_REPORTED_ERRORS entries,
    `error_count` how many there were in all."""

    def __init__(self, errors: Sequence[RowError], error_count: int | None = None):
        self.error_count = error_count if error_count is not None else len(errors)
        self.errors = list(errors[:MAX_REPORTED_ERRORS])
        super().__init__(f"{self.error_count} invalid row field(s); first: {self.errors[0] if self.errors else '-'}")

    @property
    def truncated(self) -> bool:
        return self.error_count > len(self.errors)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errors": [e.to_dict() for e in self.errors], "error_count": self.error_count}
        if self.truncated:
            body["note"] = f"only the first {len(self.errors)} of {self.error_count} errors are listed"
        return body


@dataclass(frozen=True)
class IngestResult:
    created: int
    updated: int
    predictions_added: int
    # Every item the batch created or touched, in input order.
    item_ids: tuple[int, ...]
    annotations_added: int = 0
    # The items the batch created or changed (fields, gold, new predictions or annotations), ascending: the
    # ones routing must look at again. A re-sent row that changes nothing is not among them.
    changed_item_ids: tuple[int, ...] = ()

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            created=self.created + other.created,
            updated=self.updated + other.updated,
            predictions_added=self.predictions_added + other.predictions_added,
            item_ids=self.item_ids + other.item_ids,
            annotations_added=self.annotations_added + other.annotations_added,
            changed_item_ids=tuple(sorted({*self.changed_item_ids, *other.changed_item_ids})),
        )


def _classes_or_raise(classes: Any) -> list[dict[str, str]]:
    normalised, errors = normalise_classes(classes)
    if errors:
        raise ValidationError({"classes": [f"{e.field}: {e.message}" for e in errors]})
    return [c.to_dict() for c in normalised]


def _factors_or_raise(decision_factors: Any) -> list[str]:
    if not isinstance(decision_factors, (list, tuple)) or not all(isinstance(f, str) and f.strip()
        for f in decision_factors):
        raise ValidationError({"decision_factors": ["expected an array of non-empty strings"]})
    return [f.strip() for f in decision_factors]


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    classes: Sequence[str | Mapping[str, str]],
    instructions: str = "",
    data_type: str = DataType.TEXT,
    decision_factors: Sequence[str] = (),
    show_suggestion_to_crowd: bool = False,
    field_visibility: Mapping[str, Sequence[str]] | None = None,
    rationale_required: bool = False,
    review_sample_rate: float = 0.0,
    actor: Any = None,
) -> Project:
    """Create a project. `classes` are names or {"name", "hotkey"} objects; missing hotkeys get 1..9, 0."""
    project = Project(
        name=name,
        slug=slug,
        classes=_classes_or_raise(list(classes) if isinstance(classes, (list, tuple)) else classes),
        instructions=instructions,
        data_type=data_type,
        decision_factors=_factors_or_raise(decision_factors),
        show_suggestion_to_crowd=show_suggestion_to_crowd,
        field_visibility=project_check_field_visibility(field_visibility or {}),
        rationale_required=rationale_required,
        review_sample_rate=review_sample_rate,
    )
    project.full_clean()
    project.save()
    audit_record(
        actor=actor, action="project.create", obj_type="project", obj_id=project.pk,
        data={"slug": project.slug, "classes": project.classes},
    )
    return project


PROJECT_UPDATABLE_FIELDS = frozenset({
    "name", "instructions", "data_type", "classes", "decision_factors", "show_suggestion_to_crowd",
    "field_visibility", "rationale_required", "review_sample_rate",
})


@transaction.atomic
def project_update(*, project: Project, actor: Any = None, **changes: Any) -> Project:
    """Change project settings. A class still used by a prediction, annotation, gold or final label cannot
    be removed (stored labels would stop meaning anything)."""
    unknown = set(changes) - PROJECT_UPDATABLE_FIELDS
    if unknown:
        raise ValidationError(f"cannot update {', '.join(sorted(unknown))}")
    if not changes:
        return project
    if "classes" in changes:
        changes["classes"] = project_check_classes(project=project, classes=changes["classes"])
    if "decision_factors" in changes:
        changes["decision_factors"] = _factors_or_raise(changes["decision_factors"])
    if "field_visibility" in changes:
        changes["field_visibility"] = project_check_field_visibility(changes["field_visibility"])
    before = {k: getattr(project, k) for k in changes}
    for key, value in changes.items():
        setattr(project, key, value)
    project.full_clean()
    project.save()
    after = {k: getattr(project, k) for k in changes}
    audit_record(
        actor=actor, action="project.update", obj_type="project", obj_id=project.pk,
        data={"before": before, "after": after},
    )
    return project


def project_check_field_visibility(field_visibility: Any) -> dict[str, list[str]]:
    """The normalised field_visibility (labeling.presentation), or ValidationError naming each bad path
    and role. Forms call it to show the error beside the field before saving."""
    problems = field_visibility_problems(field_visibility)
    if problems:
        raise ValidationError({"field_visibility": problems})
    return field_visibility_normalised(field_visibility)


def project_check_classes(*, project: Project | None, classes: Any) -> list[dict[str, str]]:
    """The normalised classes, or ValidationError if they are malformed or drop a class `project` still
    uses (None: a new project). Forms call it to show the error beside the field before saving."""
    normalised = _classes_or_raise(classes)
    if project is not None and project.pk is not None:
        removed = set(project.class_names) - {c["name"] for c in normalised}
        in_use = sorted(name for name in removed if _class_in_use(project, name))
        if in_use:
            raise ValidationError({"classes": [f"class {name!r} is in use and cannot be removed" for name in in_use]})
    return normalised


def _class_in_use(project: Project, name: str) -> bool:
    items = Item.objects.filter(project=project)
    return (
        items.filter(final_label=name).exists()
        or Annotation.objects.filter(item__project=project, label=name).exists()
        or GoldLabel.objects.filter(item__project=project, label=name).exists()
        # Stored probability vectors name every class, so any prediction at all pins the class set.
        or Prediction.objects.filter(item__project=project, probabilities__has_key=name).exists()
    )


def _chunks(rows: Sequence[ItemRow], size: int) -> Iterator[Sequence[ItemRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def domains_ensure(paths: Iterable[str]) -> dict[str, int]:
    """Domain ids by path, creating missing domains and their ancestors (parents first), in bulk.
    Conflicting concurrent creation is tolerated: rows are inserted with ignore_conflicts and read back."""
    wanted = sorted({a for p in paths for a in domain_ancestors(p)}, key=lambda p: (p.count("/"), p))
    if not wanted:
        return {}
    ids = dict(Domain.objects.filter(path__in=wanted).values_list("path", "id"))
    missing = [p for p in wanted if p not in ids]
    for _, level in itertools.groupby(missing, key=lambda p: p.count("/")):
        level = list(level)
        Domain.objects.bulk_create(
            [Domain(path=p, name=p.rsplit("/", 1)[-1], parent_id=ids.get(p.rpartition("/")[0])) for p in level],
            ignore_conflicts=True,
        )
        ids.update(Domain.objects.filter(path__in=level).values_list("path", "id"))
    return ids


def annotators_ensure(usernames: Iterable[str]) -> dict[str, int]:
    """User ids by username; unknown names become inactive users with unusable passwords (they exist so
    imported annotations keep their author, and cannot log in until an admin activates them)."""
    User = get_user_model()
    wanted = set(usernames)
    if not wanted:
        return {}
    ids = dict(User.objects.filter(username__in=wanted).values_list("username", "id"))
    missing = sorted(wanted - ids.keys())
    if missing:
        User.objects.bulk_create(
            [User(username=u, is_active=False, password=make_password(None)) for u in missing], ignore_conflicts=True,
        )
        ids.update(User.objects.filter(username__in=missing).values_list("username", "id"))
    return ids


@dataclass
class _Totals:
    created: int = 0
    updated: int = 0
    predictions_added: int = 0
    annotations_added: int = 0
    item_ids: list[int] = field(default_factory=list)
    changed_item_ids: set[int] = field(default_factory=set)
    created_items: dict[int, CreatedItem] = field(default_factory=dict)


def _write_chunk(*, project: Project, rows: Sequence[ItemRow], domain_ids: Mapping[str, int],
                 user_ids: Mapping[str, int], now: datetime, totals: _Totals) -> None:
    ids, existing_ids, updated = _upsert_items(project=project, rows=rows, domain_ids=domain_ids, now=now)
    predictions_added, predicted = _add_predictions(rows=rows, ids=ids, existing_ids=existing_ids, now=now)
    for row in rows:
        item_id = ids[row.external_id]
        if item_id not in existing_ids:
            totals.created_items[item_id] = CreatedItem(
                project.pk, row.data, {} if row.metadata is None else row.metadata, row.language or "",
                row.domain or "", tuple(predicted.get(item_id, ())), bool(row.annotations),
            )
    updated |= _set_gold(rows=rows, ids=ids, existing_ids=existing_ids)
    annotations_added, annotated = _add_annotations(
        rows=rows, ids=ids, existing_ids=existing_ids, user_ids=user_ids, now=now,
    )
    totals.changed_item_ids |= (set(ids.values()) - existing_ids) | updated | set(predicted) | annotated
    totals.created += len(ids) - len(existing_ids)
    totals.updated += len(updated)
    totals.predictions_added += predictions_added
    totals.annotations_added += annotations_added
    totals.item_ids.extend(ids[r.external_id] for r in rows)


def _upsert_items(*, project: Project, rows: Sequence[ItemRow], domain_ids: Mapping[str, int],
                  now: datetime) -> tuple[dict[str, int], set[int], set[int]]:
    """Insert new items, update changed ones: ids by external id, ids that existed, ids changed."""
    existing = {
        ext: (pk, data, metadata, domain_id, language)
        for ext, pk, data, metadata, domain_id, language in select_in(
            Item, ("external_id", "id", "data", "metadata", "domain_id", "language"),
            key="external_id", values=[r.external_id for r in rows], where={"project_id": project.pk},
        )
    }
    new_items: list[tuple] = []
    changed: list[Item] = []
    for row in rows:
        domain_id = domain_ids[row.domain] if row.domain is not None else None
        old = existing.get(row.external_id)
        if old is None:
            new_items.append((
                project.pk,
                row.external_id,
                json_value(row.data),
                json_value(row.metadata) if row.metadata is not None else EMPTY_OBJECT,
                domain_id,
                row.language or "",
            ))
            continue
        pk, data, metadata, old_domain_id, language = old
        new = (
            row.data,
            metadata if row.metadata is None else row.metadata,
            old_domain_id if row.domain is None else domain_id,
            language if row.language is None else row.language,
        )
        if new != (data, metadata, old_domain_id, language):
            changed.append(Item(pk=pk, data=new[0], metadata=new[1], domain_id=new[2], language=new[3], updated_at=now))
    ids = {ext: old[0] for ext, old in existing.items()}
    if new_items:
        new_ids = insert_rows_returning_ids(Item, ITEM_INSERT_FIELDS, new_items, now=now)
        ids.update(zip((r[1] for r in new_items), new_ids))
    if changed:
        Item.objects.bulk_update(changed, ["data", "metadata", "domain", "language", "updated_at"])
    return ids, {old[0] for old in existing.values()}, {item.pk for item in changed}


# Only items that existed before the chunk can already have predictions, gold or annotations: the
# lookups below are skipped for new items.

def _add_predictions(*, rows: Sequence[ItemRow], ids: Mapping[str, int], existing_ids: set[int],
                     now: datetime) -> tuple[int, dict[int, list[tuple[int, str, str, Any]]]]:
    """Insert the predictions not stored yet: how many, and by item id those added (CreatedItem.predictions)."""
    known: set[tuple[int, str, str]] = set()
    if existing_ids:
        known = set(select_in(Prediction, ("item_id", "model_name", "model_version"), key="item_id",
                              values=list(existing_ids)))
    predictions, probabilities_given = [], []
    for row in rows:
        item_id = ids[row.external_id]
        for pred in row.predictions:
            if (item_id, pred.model_name, pred.model_version) not in known:
                predictions.append((item_id, pred.model_name, pred.model_version, json_value(pred.probabilities)))
                probabilities_given.append(pred.probabilities)
    added: dict[int, list[tuple[int, str, str, Any]]] = {}
    if predictions:
        prediction_ids = insert_rows_returning_ids(Prediction, PREDICTION_INSERT_FIELDS, predictions, now=now)
        for (item_id, model_name, model_version, _), prediction_id, probabilities in zip(
            predictions, prediction_ids, probabilities_given
        ):
            added.setdefault(item_id, []).append((prediction_id, model_name, model_version, probabilities))
    return len(predictions), added


def _set_gold(*, rows: Sequence[ItemRow], ids: Mapping[str, int], existing_ids: set[int]) -> set[int]:
    """Create or replace gold labels; returns the ids of existing items whose gold changed."""
    given = {ids[r.external_id]: r.gold for r in rows if r.gold is not None}
    if not given:
        return set()
    known = dict(GoldLabel.objects.filter(item_id__in=[i for i in given if i in existing_ids])
                 .values_list("item_id", "label")) if existing_ids else {}
    new = [GoldLabel(item_id=i, label=label, provenance=GOLD_PROVENANCE_IMPORT) for i, label in given.items()
        if i not in known]
    replaced = {i: label for i, label in given.items() if i in known and known[i] != label}
    if new:
        GoldLabel.objects.bulk_create(new, batch_size=INGEST_CHUNK_SIZE)
    if replaced:
        golds = list(GoldLabel.objects.filter(item_id__in=list(replaced)))
        for gold in golds:
            gold.label, gold.provenance = replaced[gold.item_id], GOLD_PROVENANCE_IMPORT
        GoldLabel.objects.bulk_update(golds, ["label", "provenance"])
    return {g.item_id for g in new if g.item_id in existing_ids} | set(replaced)


def _add_annotations(*, rows: Sequence[ItemRow], ids: Mapping[str, int], existing_ids: set[int],
                     user_ids: Mapping[str, int], now: datetime) -> tuple[int, set[int]]:
    """Insert the annotations not stored yet: how many, and the ids of the items they are on."""
    if not any(r.annotations for r in rows):
        return 0, set()
    # Keys with and without the time: a re-sent annotation that gives no submitted_at matches any time.
    known: set[tuple] = set()
    if existing_ids:
        for item_id, user_id, label, submitted_at in Annotation.objects.filter(
            item_id__in=[ids[r.external_id] for r in rows if r.annotations and ids[r.external_id] in existing_ids]
        ).values_list("item_id", "annotator_id", "label", "submitted_at"):
            known.add((item_id, user_id, label, submitted_at))
            known.add((item_id, user_id, label, None))
    annotations: list[Annotation] = []
    for row in rows:
        item_id = ids[row.external_id]
        for ann in row.annotations:
            user_id = user_ids[ann.annotator]
            key = (item_id, user_id, ann.label, ann.submitted_at)
            if key in known:
                continue
            known.add(key)
            known.add((item_id, user_id, ann.label, None))
            annotations.append(Annotation(
                item_id=item_id, annotator_id=user_id, label=ann.label, rationale=ann.rationale, factors=ann.factors,
                role=ann.role, time_spent_ms=ann.time_spent_ms, submitted_at=ann.submitted_at or now,
                confidence=ann.confidence,
            ))
    if annotations:
        Annotation.objects.bulk_create(annotations, batch_size=INGEST_CHUNK_SIZE)
    return len(annotations), {a.item_id for a in annotations}


def _items_write(*, project: Project, rows: Sequence[ItemRow], actor: Any, source: str,
                 chunk_size: int = INGEST_CHUNK_SIZE) -> IngestResult:
    """Write validated rows in one transaction, audit it and tell higher layers."""
    now = timezone.now()
    totals = _Totals()
    with transaction.atomic():
        domain_ids = domains_ensure(r.domain for r in rows if r.domain is not None)
        user_ids = annotators_ensure(a.annotator for r in rows for a in r.annotations)
        for chunk in _chunks(rows, chunk_size):
            _write_chunk(project=project, rows=chunk, domain_ids=domain_ids, user_ids=user_ids, now=now, totals=totals)
        result = IngestResult(
            created=totals.created,
            updated=totals.updated,
            predictions_added=totals.predictions_added,
            item_ids=tuple(totals.item_ids),
            annotations_added=totals.annotations_added,
            changed_item_ids=tuple(sorted(totals.changed_item_ids)),
        )
        audit_record(
            actor=actor, action="items.ingest", obj_type="project", obj_id=project.pk,
            data={
                "source": source, "items": len(rows), "created": result.created, "updated": result.updated,
                "predictions_added": result.predictions_added, "annotations_added": result.annotations_added,
            },
        )
        # Sent inside the transaction, after the writes: routing (a higher layer) connects a receiver that
        # routes these items in this same transaction, so an item is never committed without its decision.
        # Only the items this batch created or changed: re-sending known rows unchanged writes nothing.
        items_ingested.send(
            sender=Item, project_id=project.pk, item_ids=result.changed_item_ids, actor=actor_or_none(actor),
            created=totals.created_items,
        )
    return result


def items_ingest(*, project: Project, rows: Iterable[Any], actor: Any = None, source: str = "api",
                 chunk_size: int = INGEST_CHUNK_SIZE) -> IngestResult:
    """Validate then write a batch of item rows atomically (see the module docstring for the rules).

    Raises IngestValidationError, with every error, before writing anything if any row is invalid.
    """
    item_rows, errors = validate_rows(rows, project.class_names)
    if errors:
        raise IngestValidationError(errors)
    return _items_write(project=project, rows=item_rows, actor=actor, source=source, chunk_size=chunk_size)


ProgressCallback = Callable[[str, int], None]


def _batched(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def items_validate_stream(*, project: Project, stream: TextIO, fmt: str,
                          on_progress: ProgressCallback | None = None) -> int:
    """Validate a whole file without writing; returns its row count or raises IngestValidationError
    (at most MAX_REPORTED_ERRORS kept, all counted). Memory grows with distinct external ids only."""
    validator = RowValidator(project.class_names)
    errors: list[RowError] = []
    error_count = 0
    count = 0
    for index, row in enumerate(read_rows(stream, fmt)):
        _, row_errors = validator.validate(index, row)
        if row_errors:
            error_count += len(row_errors)
            errors.extend(row_errors[: MAX_REPORTED_ERRORS - len(errors)])
        count = index + 1
        if on_progress is not None and count % 1000 == 0:
            on_progress("validate", count)
    if on_progress is not None:
        on_progress("validate", count)
    if error_count:
        raise IngestValidationError(errors, error_count)
    return count


def items_import_stream(*, project: Project, stream: TextIO, fmt: str, actor: Any = None,
                        batch_size: int = INGEST_CHUNK_SIZE, source: str = "file",
                        on_progress: ProgressCallback | None = None) -> IngestResult:
    """Import a file of any size: one streaming pass validates every row (nothing is written if any row
    is bad), a second pass writes batches of `batch_size` rows, each in its own transaction with its own
    audit event and `items_ingested` signal. `stream` must be seekable. If a write fails mid-way (e.g. the
    database goes away) the batches before it stay committed; re-running the import is safe because
    ingest is idempotent."""
    items_validate_stream(project=project, stream=stream, fmt=fmt, on_progress=on_progress)
    stream.seek(0)
    validator = RowValidator(project.class_names)
    total = IngestResult(created=0, updated=0, predictions_added=0, item_ids=())
    done = 0
    rows = enumerate(read_rows(stream, fmt))
    if on_progress is not None:
        on_progress("import", 0)
    for batch in _batched(rows, batch_size):
        item_rows = []
        for index, row in batch:
            item, row_errors = validator.validate(index, row)
            if row_errors:  # only if the file changed between the two passes
                raise IngestValidationError(row_errors)
            item_rows.append(item)
        result = _items_write(project=project, rows=item_rows, actor=actor, source=source, chunk_size=batch_size)
        # Item ids of a multi-million-row file are not worth holding: the signal already carried them.
        total = total + IngestResult(
            created=result.created, updated=result.updated, predictions_added=result.predictions_added,
            item_ids=(), annotations_added=result.annotations_added,
        )
        done += len(batch)
        if on_progress is not None:
            on_progress("import", done)
    return total
