"""Reads of labeling data: querysets for the API and admin, and the export row stream."""
from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Count, Prefetch, Q, QuerySet

from core.bulk import columns, model_from_row, prepared_cursor
from core.replicas import read_alias
from experts.models import Domain, Role
from labeling.models import Annotation, GoldLabel, Item, ItemStatus, Prediction, Project

EXPORT_CHUNK_SIZE = 2000
SUBSETS = ("escalated", "disagreements")


def project_list() -> QuerySet[Project]:
    return Project.objects.order_by("name", "id")


# Items whose keys the project admin offers for field visibility: the newest few, since one image item's
# data can weigh megabytes and a project's items usually share their keys.
FIELD_PATH_SAMPLE = 50


def item_field_paths(*, project: Project, sample: int = FIELD_PATH_SAMPLE) -> list[str]:
    """The top-level fields of the project's newest `sample` items, as "data.<key>" and "metadata.<key>"."""
    paths: set[str] = set()
    for data, metadata in Item.objects.filter(project=project).order_by("-id").values_list("data", "metadata")[:sample]:
        paths.update(f"data.{key}" for key in (data if isinstance(data, dict) else {}))
        paths.update(f"metadata.{key}" for key in (metadata if isinstance(metadata, dict) else {}))
    return sorted(paths)


def project_get(*, slug: str) -> Project:
    """The project with this slug (Project.DoesNotExist when there is none), by one prepared statement:
    the annotators' API looks it up on every claim."""
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT {columns(Project)} FROM {Project._meta.db_table} WHERE slug = %s", [slug])
        row = cursor.fetchone()
    if row is None:
        raise Project.DoesNotExist(f"No project {slug!r}.")
    return model_from_row(Project, row)


def domain_filter(path: str) -> Q:
    """An item's domain matches `path` when it is that domain or any sub-domain below it."""
    path = path.strip().strip("/")
    return Q(domain__path=path) | Q(domain__path__startswith=path + "/")


def item_list(*, project: Project, subset: str | None = None) -> QuerySet[Item]:
    qs = Item.objects.filter(project=project)
    if subset == "escalated":
        qs = qs.filter(
            Q(status=ItemStatus.ESCALATED) | Q(id__in=Annotation.objects.filter(role=Role.EXPERT).values("item_id"))
        )
    elif subset == "disagreements":
        disagreeing = (
            Annotation.objects.filter(item__project=project)
            .values("item_id")
            .annotate(n_labels=Count("label", distinct=True))
            .filter(n_labels__gt=1)
            .values("item_id")
        )
        qs = qs.filter(id__in=disagreeing)
    elif subset:
        raise ValueError(f"unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")
    return qs


def item_with_details(qs: QuerySet[Item]) -> QuerySet[Item]:
    """Everything an item's full representation shows, fetched in a fixed number of queries per page."""
    return qs.select_related("domain", "gold").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.order_by("created_at", "id")),
        Prefetch("annotations", queryset=Annotation.objects.select_related("annotator").order_by("submitted_at", "id")),
    )


def item_get(*, project: Project, external_id: str) -> Item:
    return item_with_details(Item.objects.filter(project=project)).get(external_id=external_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def item_export_rows(*, project: Project, subset: str | None = None, chunk_size: int | None = None,
                     using: str | None = None) -> Iterator[dict[str, Any]]:
    """Export rows in id order, one keyset-paginated chunk at a time: bounded memory, and no long-held
    cursor, which a replica could cancel on a replication conflict. Read from the database `using` (an
    export passes core.replicas.replica_alias()).

    Read as plain values, never a model instance per item, prediction and annotation: those cost 30 times
    what the database does (bench/export.py). On PostgreSQL the database writes each item as one JSON
    document (`_POSTGRESQL_ROW`), decoded with one call; elsewhere three queries a chunk."""
    chunk_size = chunk_size or EXPORT_CHUNK_SIZE
    db = connections[using or read_alias()]
    ids = item_list(project=project, subset=subset).using(db.alias).order_by("id").values_list("id", flat=True)
    last_id = 0
    while chunk := list(ids.filter(id__gt=last_id)[:chunk_size]):
        if db.vendor == "postgresql":
            yield from _export_rows_postgresql(db, chunk)
        else:
            yield from _export_rows(db.alias, chunk)
        last_id = chunk[-1]


def _export_rows_postgresql(db: Any, ids: list[int]) -> Iterator[dict[str, Any]]:
    with db.cursor() as cursor:
        # Streamed, not fetched whole: the database builds the next documents while these are written out.
        # psycopg's stream is not in Django's cursor wrapper, so this statement is not in its query log; a
        # stream closed early (a client gone) is cancelled and leaves the connection idle.
        for document, final_confidence in cursor.cursor.stream(_postgresql_row_sql(), [ids], size=_STREAM_ROWS):
            row = json.loads(document)
            # A float8 in json_build_object prints as the shortest number ("1" for 1.0), Python's json "1.0".
            row["final_confidence"] = final_confidence
            for annotation in row["annotations"]:
                annotation["submitted_at"] = _python_isoformat(annotation["submitted_at"])
            yield row


_STREAM_ROWS = 200
_ISO_LENGTHS = (len("2026-01-01T10:00:00+00:00"), len("2026-01-01T10:00:00.000001+00:00"))


def _python_isoformat(value: str | None) -> str | None:
    """PostgreSQL's JSON form of a UTC timestamp as datetime.isoformat writes it: PostgreSQL drops the
    fraction's trailing zeros (".5"), Python writes six digits (".500000")."""
    if value is None or len(value) in _ISO_LENGTHS:
        return value
    whole, _, rest = value.partition(".")
    return f"{whole}.{rest[:-6].ljust(6, '0')}{rest[-6:]}"


@functools.cache
def _postgresql_row_sql() -> str:
    """An export row per item of the `= ANY(%s)` ids, in id order, as json_build_object keeps keys in the
    order given. Values match what _export_rows gives, but for the two _export_rows_postgresql mends.
    The connection's time zone is UTC (Django sets it), so timestamps come out as "+00:00"."""
    t = {m.__name__: m._meta.db_table for m in (Item, Prediction, Annotation, GoldLabel, Domain)}
    user = get_user_model()
    return f"""
        SELECT json_build_object(
            'external_id', i.external_id, 'data', i.data, 'status', i.status,
            'final_label', NULLIF(i.final_label, ''), 'final_source', NULLIF(i.final_source, ''),
            'final_confidence', NULL,
            'annotations', COALESCE((
                SELECT json_agg(json_build_object(
                    'annotator', u.{user.USERNAME_FIELD}, 'label', a.label, 'rationale', a.rationale,
                    'factors', a.factors, 'role', a.role, 'time_spent_ms', a.time_spent_ms,
                    'submitted_at', a.submitted_at, 'confidence', a.confidence) ORDER BY a.submitted_at, a.id)
                FROM {t["Annotation"]} a JOIN {user._meta.db_table} u ON u.id = a.annotator_id
                WHERE a.item_id = i.id), '[]'),
            'gold', g.label, 'metadata', i.metadata, 'domain', d.path, 'language', i.language,
            'predictions', COALESCE((
                SELECT json_agg(json_build_object(
                    'model_name', p.model_name, 'model_version', p.model_version, 'probabilities', p.probabilities)
                    ORDER BY p.created_at, p.id)
                FROM {t["Prediction"]} p WHERE p.item_id = i.id), '[]')
        )::text, i.final_confidence
        FROM {t["Item"]} i
        LEFT JOIN {t["GoldLabel"]} g ON g.item_id = i.id
        LEFT JOIN {t["Domain"]} d ON d.id = i.domain_id
        WHERE i.id = ANY(%s)
        ORDER BY i.id"""


def _export_rows(using: str, ids: list[int]) -> Iterator[dict[str, Any]]:
    items = (Item.objects.using(using).filter(id__in=ids).order_by("id")
             .values_list("id", "external_id", "data", "status", "final_label", "final_source", "final_confidence",
                          "gold__label", "metadata", "domain__path", "language"))
    predictions: dict[int, list[dict[str, Any]]] = {}
    for item_id, model_name, model_version, probabilities in (
            Prediction.objects.using(using).filter(item_id__in=ids).order_by("item_id", "created_at", "id")
            .values_list("item_id", "model_name", "model_version", "probabilities")):
        predictions.setdefault(item_id, []).append(
            {"model_name": model_name, "model_version": model_version, "probabilities": probabilities})
    annotations: dict[int, list[dict[str, Any]]] = {}
    for item_id, annotator, label, rationale, factors, role, ms, submitted_at, confidence in (
            Annotation.objects.using(using).filter(item_id__in=ids).order_by("item_id", "submitted_at", "id")
            .values_list("item_id", "annotator__username", "label", "rationale", "factors", "role",
                         "time_spent_ms", "submitted_at", "confidence")):
        annotations.setdefault(item_id, []).append({
            "annotator": annotator, "label": label, "rationale": rationale, "factors": factors, "role": role,
            "time_spent_ms": ms, "submitted_at": _iso(submitted_at), "confidence": confidence,
        })
    for (item_id, external_id, data, status, final_label, final_source, final_confidence, gold, metadata, domain,
         language) in items:
        yield {
            "external_id": external_id,
            "data": data,
            "status": status,
            "final_label": final_label or None,
            "final_source": final_source or None,
            "final_confidence": final_confidence,
            "annotations": annotations.get(item_id, []),
            "gold": gold,
            "metadata": metadata,
            "domain": domain,
            "language": language,
            "predictions": predictions.get(item_id, []),
        }
