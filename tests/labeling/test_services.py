import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.models import AuditEvent
from experts.models import Domain
from labeling import services
from labeling.models import Annotation, GoldLabel, Item, Prediction
from labeling.signals import items_ingested
from tests.labeling.conftest import row

pytestmark = pytest.mark.django_db


class TestProjectCreate:
    def test_classes_are_stored_with_default_hotkeys_and_the_creation_is_audited(self, staff):
        project = services.project_create(
            name="Pets", slug="pets", classes=["cat", {"name": "dog", "hotkey": "d"}, "bird"], actor=staff,
            decision_factors=["sarcasm"],
        )
        assert project.classes == [
            {"name": "cat", "hotkey": "1"}, {"name": "dog", "hotkey": "d"}, {"name": "bird", "hotkey": "2"},
        ]
        event = AuditEvent.objects.get(action="project.create")
        assert event.actor == staff and event.object_id == str(project.pk)

    @pytest.mark.parametrize("kwargs", [
        {"classes": ["cat", "cat"]},
        {"classes": ["cat"]},
        {"classes": ["cat", "dog"], "slug": "not a slug"},
        {"classes": ["cat", "dog"], "decision_factors": "sarcasm"},
    ])
    def test_invalid_projects_are_refused(self, db, kwargs):
        with pytest.raises(ValidationError):
            services.project_create(**{"name": "P", "slug": "p", **kwargs})
        assert not AuditEvent.objects.exists()

    def test_a_class_in_use_cannot_be_removed(self, project):
        services.items_ingest(project=project, rows=[row(gold="bird")])
        with pytest.raises(ValidationError, match="bird"):
            services.project_update(project=project, classes=["cat", "dog"])
        updated = services.project_update(project=project, classes=["cat", "dog", "bird", "fish"], name="Pets 2")
        assert updated.class_names == ["cat", "dog", "bird", "fish"]
        assert AuditEvent.objects.filter(action="project.update").count() == 1


class TestItemsIngest:
    def test_creates_items_predictions_domains_gold_and_annotations(self, project):
        result = services.items_ingest(project=project, rows=[
            row("a", domain="medical/radiology/ct", language="en", gold="cat", metadata={"src": "x"}),
            row("b", annotations=[{"annotator": "newbie", "label": "dog", "rationale": "ears", "role": "expert",
                                   "submitted_at": "2025-01-01T00:00:00Z"}]),
        ])
        assert (result.created, result.updated, result.predictions_added, result.annotations_added) == (2, 0, 2, 1)
        items = {i.external_id: i for i in Item.objects.all()}
        assert result.item_ids == (items["a"].pk, items["b"].pk)
        assert items["a"].domain.path == "medical/radiology/ct"
        assert items["a"].domain.parent.path == "medical/radiology"
        assert items["a"].domain.parent.parent.parent is None
        assert items["a"].metadata == {"src": "x"} and items["a"].language == "en"
        assert items["a"].gold.label == "cat"
        newbie = get_user_model().objects.get(username="newbie")
        assert not newbie.is_active and not newbie.has_usable_password()
        annotation = Annotation.objects.get()
        assert (annotation.annotator, annotation.label, annotation.role) == (newbie, "dog", "expert")
        event = AuditEvent.objects.get(action="items.ingest")
        assert event.data["created"] == 2 and event.data["items"] == 2

    def test_existing_domains_are_reused(self, project):
        radiology = Domain.objects.create(path="medical", name="Medicine")
        services.items_ingest(project=project, rows=[row("a", domain="medical/radiology")])
        assert Domain.objects.get(path="medical/radiology").parent == radiology
        assert Domain.objects.count() == 2

    def test_re_ingesting_the_same_rows_duplicates_nothing(self, project):
        rows = [row(str(i), domain="pets", gold="dog",
                    annotations=[{"annotator": "crowd9", "label": "cat"}]) for i in range(5)]
        services.items_ingest(project=project, rows=rows)
        counts = (Item.objects.count(), Prediction.objects.count(), GoldLabel.objects.count(),
            Annotation.objects.count())
        again = services.items_ingest(project=project, rows=rows)
        assert (again.created, again.updated, again.predictions_added, again.annotations_added) == (0, 0, 0, 0)
        assert len(again.item_ids) == 5
        assert (Item.objects.count(), Prediction.objects.count(), GoldLabel.objects.count(),
                Annotation.objects.count()) == counts == (5, 5, 5, 5)

    def test_a_new_model_version_is_added_beside_the_old(self, project):
        services.items_ingest(project=project, rows=[row("a")])
        result = services.items_ingest(project=project, rows=[row("a", predictions=[
            {"model_version": "clf-1", "probabilities": {"cat": 0.1, "dog": 0.9}},
            {"model_version": "clf-2", "probabilities": {"cat": 0.2, "dog": 0.8}},
            {"model_name": "other", "model_version": "clf-1", "probabilities": {"bird": 1.0}},
        ])])
        assert result.predictions_added == 2
        stored = {(p.model_name, p.model_version): p.probabilities for p in Prediction.objects.all()}
        # the known prediction is kept as it was, never overwritten
        assert stored[("", "clf-1")]["cat"] == 0.7
        assert set(stored) == {("", "clf-1"), ("", "clf-2"), ("other", "clf-1")}

    def test_re_sent_items_update_only_given_changed_fields(self, project):
        services.items_ingest(project=project,
            rows=[row("a", metadata={"k": 1}, language="en", domain="x", gold="cat")])
        item = Item.objects.get()
        result = services.items_ingest(project=project, rows=[row("a", data={"text": "new"}, gold="dog")])
        assert (result.created, result.updated) == (0, 1)
        item.refresh_from_db()
        assert item.data == {"text": "new"}
        assert (item.metadata, item.language, item.domain.path) == ({"k": 1}, "en", "x")
        assert item.gold.label == "dog"
        assert item.updated_at > item.created_at

    def test_a_gold_change_alone_counts_as_an_update(self, project):
        services.items_ingest(project=project, rows=[row("a", gold="cat")])
        assert services.items_ingest(project=project, rows=[row("a", gold="dog")]).updated == 1

    def test_a_batch_with_one_bad_row_writes_nothing(self, project):
        rows = [row("a", domain="new/domain", annotations=[{"annotator": "ghost", "label": "cat"}]),
            row("b", gold="emu")]
        with pytest.raises(services.IngestValidationError) as excinfo:
            services.items_ingest(project=project, rows=rows)
        assert [(e.row, e.field) for e in excinfo.value.errors] == [(1, "gold")]
        assert not Item.objects.exists() and not Domain.objects.exists()
        assert not get_user_model().objects.filter(username="ghost").exists()
        assert not AuditEvent.objects.filter(action="items.ingest").exists()

    def test_the_error_list_is_capped_but_counted(self, project):
        rows = [row(str(i), gold="emu") for i in range(services.MAX_REPORTED_ERRORS + 5)]
        with pytest.raises(services.IngestValidationError) as excinfo:
            services.items_ingest(project=project, rows=rows)
        body = excinfo.value.to_dict()
        assert len(body["errors"]) == services.MAX_REPORTED_ERRORS
        assert body["error_count"] == services.MAX_REPORTED_ERRORS + 5
        assert "note" in body

    def test_chunked_writes_match_a_single_chunk(self, project):
        services.items_ingest(project=project, rows=[row("1"), row("3", gold="cat")])
        rows = [row(str(i), gold="bird") for i in range(7)]
        result = services.items_ingest(project=project, rows=rows, chunk_size=2)
        assert (result.created, result.updated, result.predictions_added) == (5, 2, 5)
        by_id = dict(Item.objects.values_list("id", "external_id"))
        assert [by_id[i] for i in result.item_ids] == [str(i) for i in range(7)]
        assert set(GoldLabel.objects.values_list("label", flat=True)) == {"bird"}

    def test_queries_do_not_grow_with_the_number_of_rows(self, project, no_ingest_receivers):
        def count(n, prefix):
            rows = [row(f"{prefix}{i}", domain=f"d/{i % 3}", gold="cat",
                        annotations=[{"annotator": f"u{i % 4}", "label": "dog"}]) for i in range(n)]
            with CaptureQueriesContext(connection) as first:
                services.items_ingest(project=project, rows=rows)
            with CaptureQueriesContext(connection) as again:
                services.items_ingest(project=project, rows=rows)
            return len(first.captured_queries), len(again.captured_queries)

        count(5, "warm")  # creates the domains and users both runs share
        small, big = count(10, "x"), count(300, "y")
        # Inserts split into SQLite-sized batches (about 100 rows), never one statement per row.
        assert big[0] <= small[0] + 10
        assert big[1] == small[1]


class TestItemsIngestedSignal:
    def test_sent_once_inside_the_transaction_with_ids_in_input_order(self, project, staff):
        calls = []

        def receiver(sender, project_id, item_ids, actor, **kwargs):
            calls.append((project_id, item_ids, actor, transaction.get_connection().in_atomic_block,
                          Item.objects.filter(pk__in=item_ids).count()))

        items_ingested.connect(receiver)
        try:
            result = services.items_ingest(project=project, rows=[row("b"), row("a")], actor=staff)
        finally:
            items_ingested.disconnect(receiver)
        assert calls == [(project.pk, result.item_ids, staff, True, 2)]

    def test_a_failing_receiver_rolls_the_batch_back(self, project):
        def receiver(**kwargs):
            raise RuntimeError("routing failed")

        items_ingested.connect(receiver)
        try:
            with pytest.raises(RuntimeError):
                services.items_ingest(project=project, rows=[row("a")])
        finally:
            items_ingested.disconnect(receiver)
        assert not Item.objects.exists()


class TestImportStream:
    def jsonl(self, rows):
        return io.StringIO("".join(json.dumps(r) + "\n" for r in rows))

    def test_imports_in_batches_with_progress(self, project):
        progress = []
        result = services.items_import_stream(
            project=project, stream=self.jsonl([row(str(i)) for i in range(5)]), fmt="jsonl", batch_size=2,
            on_progress=lambda stage, done: progress.append((stage, done)),
        )
        assert result.created == 5 and Item.objects.count() == 5
        assert ("validate", 5) in progress
        assert [d for s, d in progress if s == "import"] == [0, 2, 4, 5]
        assert AuditEvent.objects.filter(action="items.ingest").count() == 3

    def test_a_bad_row_anywhere_stops_the_import_before_any_batch(self, project):
        rows = [row(str(i)) for i in range(6)] + [row("bad", gold="emu")]
        with pytest.raises(services.IngestValidationError) as excinfo:
            services.items_import_stream(project=project, stream=self.jsonl(rows), fmt="jsonl", batch_size=2)
        assert [(e.row, e.field) for e in excinfo.value.errors] == [(6, "gold")]
        assert not Item.objects.exists()

    def test_duplicates_across_batches_are_caught(self, project):
        rows = [row("a"), row("b"), row("c"), row("a")]
        with pytest.raises(services.IngestValidationError) as excinfo:
            services.items_import_stream(project=project, stream=self.jsonl(rows), fmt="jsonl", batch_size=2)
        assert [(e.row, e.field) for e in excinfo.value.errors] == [(3, "external_id")]
