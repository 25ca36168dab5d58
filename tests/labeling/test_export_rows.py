"""The export reads plain values (and on PostgreSQL one JSON document per item built by the database); its
output must be byte for byte what the model-instance export it replaced wrote, kept here as the reference."""
from datetime import datetime
from typing import Any

import pytest
from django.db.models import Prefetch

from labeling import formats, selectors, services
from labeling.models import Annotation, FinalSource, Item, ItemStatus, Prediction
from tests.labeling.conftest import row

pytestmark = pytest.mark.django_db


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def reference_rows(project, subset=None) -> list[dict[str, Any]]:
    """The export before plain values: model instances, their relations prefetched."""
    items = selectors.item_list(project=project, subset=subset).select_related("domain", "gold").prefetch_related(
        Prefetch("predictions", queryset=Prediction.objects.order_by("created_at", "id")),
        Prefetch("annotations", queryset=Annotation.objects.select_related("annotator").order_by("submitted_at", "id")),
    ).order_by("id")
    rows = []
    for item in items:
        gold = getattr(item, "gold", None)
        rows.append({
            "external_id": item.external_id,
            "data": item.data,
            "status": item.status,
            "final_label": item.final_label or None,
            "final_source": item.final_source or None,
            "final_confidence": item.final_confidence,
            "annotations": [{
                "annotator": a.annotator.username, "label": a.label, "rationale": a.rationale, "factors": a.factors,
                "role": a.role, "time_spent_ms": a.time_spent_ms, "submitted_at": _iso(a.submitted_at),
                "confidence": a.confidence,
            } for a in item.annotations.all()],
            "gold": gold.label if gold is not None else None,
            "metadata": item.metadata,
            "domain": item.domain.path if item.domain_id else None,
            "language": item.language,
            "predictions": [{"model_name": p.model_name, "model_version": p.model_version,
                             "probabilities": p.probabilities} for p in item.predictions.all()],
        })
    return rows


def written(rows, fmt) -> bytes:
    return b"".join(formats.encoded_blocks(formats.write_rows(rows, fmt, data_key="text"), size=100))


@pytest.fixture
def awkward(project):
    """Items with the values whose text differs most easily between writers."""
    services.items_ingest(project=project, rows=[
        row("plain"),
        row("bare", predictions=[]),
        row("wide", data={"text": "ünï \u2028 \"q\" \\ \t\x01 é", "z": 1, "a": [1.5, None, True], "nested": {"k": {}}},
            metadata={"b": 2, "a": 1e-07, "big": 12345678901234567890, "list": []}, domain="med/rad", language="pt-BR",
            gold="dog",
            predictions=[
                {"model_version": "v2", "model_name": "later",
                 "probabilities": {"cat": 1e-07, "dog": 0.9999999, "bird": 0}},
                {"model_version": "v1", "probabilities": {"cat": 0.1, "dog": 0.2, "bird": 0.7}},
            ],
            annotations=[
                {"annotator": "c1", "label": "cat", "submitted_at": "2026-01-02T10:00:00.5+00:00",
                 "time_spent_ms": 1200, "confidence": 5, "rationale": "fur\nand \"ears\"", "factors": ["shape", "ü"]},
                {"annotator": "c2", "label": "dog", "submitted_at": "2026-01-01T09:00:00.000001+02:00"},
                {"annotator": "e1", "label": "dog", "role": "expert", "submitted_at": "2026-01-03T00:00:00Z"},
                {"annotator": "c3", "label": "bird", "submitted_at": "2026-01-02T10:00:00.123450+00:00"},
            ]),
        row("decided", annotations=[{"annotator": "c1", "label": "cat"}, {"annotator": "c2", "label": "cat"}]),
    ])
    Item.objects.filter(external_id="decided").update(
        status=ItemStatus.LABELED, final_label="cat", final_source=FinalSource.CONSENSUS, final_confidence=1.0)
    Item.objects.filter(external_id="wide").update(status=ItemStatus.ESCALATED, final_confidence=0.30000000000000004)
    return project


@pytest.mark.parametrize("fmt", formats.EXPORT_FORMATS)
@pytest.mark.parametrize("subset", [None, *selectors.SUBSETS])
def test_export_writes_what_the_model_instance_export_wrote(awkward, fmt, subset, monkeypatch):
    monkeypatch.setattr(selectors, "EXPORT_CHUNK_SIZE", 3)
    expected = reference_rows(awkward, subset)
    assert len(expected) == {None: 4, "escalated": 1, "disagreements": 1}[subset]
    assert written(selectors.item_export_rows(project=awkward, subset=subset), fmt) == written(expected, fmt)


def test_timestamps_keep_six_fraction_digits_as_python_writes_them(awkward):
    (wide,) = [r for r in selectors.item_export_rows(project=awkward) if r["external_id"] == "wide"]
    assert [a["submitted_at"] for a in wide["annotations"]] == [
        "2026-01-01T07:00:00.000001+00:00", "2026-01-02T10:00:00.123450+00:00", "2026-01-02T10:00:00.500000+00:00",
        "2026-01-03T00:00:00+00:00",
    ]


def test_an_export_abandoned_midway_leaves_the_connection_usable(awkward, monkeypatch):
    monkeypatch.setattr(selectors, "EXPORT_CHUNK_SIZE", 3)
    rows = selectors.item_export_rows(project=awkward)
    assert next(rows)["external_id"] == "plain"
    rows.close()  # as Django closes a streamed response whose client went away
    assert Item.objects.filter(project=awkward).count() == 4


def test_encoded_blocks_join_small_pieces_without_changing_the_text():
    pieces = ["é" * 3, "ab", "", "x" * 10, "ü"]
    blocks = list(formats.encoded_blocks(pieces, size=5))
    assert b"".join(blocks) == "".join(pieces).encode()
    assert len(blocks) == 3
