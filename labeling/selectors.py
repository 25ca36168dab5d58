"""Reads of labeling data: querysets for the API and admin, and the export row stream."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from core.bulk import columns, model_from_row, prepared_cursor
from experts.models import Role
from labeling.models import Annotation, Item, ItemStatus, Prediction, Project

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


def prediction_to_dict(prediction: Prediction) -> dict[str, Any]:
    return {
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
        "probabilities": prediction.probabilities,
    }


def annotation_to_dict(annotation: Annotation) -> dict[str, Any]:
    return {
        "annotator": annotation.annotator.username,
        "label": annotation.label,
        "rationale": annotation.rationale,
        "factors": annotation.factors,
        "role": annotation.role,
        "time_spent_ms": annotation.time_spent_ms,
        "submitted_at": _iso(annotation.submitted_at),
        "confidence": annotation.confidence,
    }


def item_to_dict(item: Item) -> dict[str, Any]:
    """The export format of one item (expects `item_with_details` prefetching)."""
    gold = getattr(item, "gold", None)
    return {
        "external_id": item.external_id,
        "data": item.data,
        "status": item.status,
        "final_label": item.final_label or None,
        "final_source": item.final_source or None,
        "final_confidence": item.final_confidence,
        "annotations": [annotation_to_dict(a) for a in item.annotations.all()],
        "gold": gold.label if gold is not None else None,
        "metadata": item.metadata,
        "domain": item.domain.path if item.domain_id else None,
        "language": item.language,
        "predictions": [prediction_to_dict(p) for p in item.predictions.all()],
    }


def item_export_rows(*, project: Project, subset: str | None = None,
    chunk_size: int | None = None) -> Iterator[dict[str, Any]]:
    """Export rows in id order, one keyset-paginated chunk at a time (bounded memory, no long-held cursor)."""
    chunk_size = chunk_size or EXPORT_CHUNK_SIZE
    base = item_with_details(item_list(project=project, subset=subset)).order_by("id")
    last_id = 0
    while True:
        chunk = list(base.filter(id__gt=last_id)[:chunk_size])
        if not chunk:
            return
        for item in chunk:
            yield item_to_dict(item)
        last_id = chunk[-1].id
