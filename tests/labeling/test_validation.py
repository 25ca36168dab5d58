"""Pure validation of ingest rows and classes: no database."""
import math

import pytest

from labeling.validation import MalformedRow, RowError, normalise_classes, validate_rows

CLASSES = ("cat", "dog", "bird")


def ok_row(**overrides):
    row = {"external_id": "a-1", "data": {"text": "purrs"}}
    row.update(overrides)
    return row


def errors_of(rows, classes=CLASSES):
    normalised, errors = validate_rows(rows, classes)
    assert not (normalised and errors)
    return [(e.row, e.field) for e in errors], errors


def test_minimal_row_is_accepted_and_defaults_are_unset():
    rows, errors = validate_rows([ok_row()], CLASSES)
    assert errors == []
    (row,) = rows
    assert row.external_id == "a-1"
    assert row.data == {"text": "purrs"}
    assert row.metadata is None and row.domain is None and row.language is None and row.gold is None
    assert row.predictions == () and row.annotations == ()


def test_full_row_is_normalised():
    rows, errors = validate_rows([ok_row(
        metadata={"source": "crm"}, domain=" medical/radiology/ ", language="pt-BR", gold="dog",
        predictions=[{"model_name": "clf", "model_version": 3, "probabilities": {"cat": 0.25, "dog": 0.75}}],
        annotations=[{"annotator": "ann", "label": "dog", "submitted_at": "2025-01-02T03:04:05Z", "confidence": 4}],
    )], CLASSES)
    assert errors == []
    row = rows[0]
    assert row.domain == "medical/radiology"
    assert row.language == "pt-BR"
    assert row.gold == "dog"
    (pred,) = row.predictions
    assert pred.model_version == "3"
    # every class present, in project order, missing ones at 0
    assert list(pred.probabilities) == ["cat", "dog", "bird"]
    assert pred.probabilities["bird"] == 0.0
    (ann,) = row.annotations
    assert ann.role == "crowd"
    assert ann.submitted_at.utcoffset().total_seconds() == 0
    assert ann.confidence == 4


@pytest.mark.parametrize(
    "row, field",
    [
        ({"data": {"text": "x"}}, "external_id"),
        ({"external_id": "", "data": {"text": "x"}}, "external_id"),
        ({"external_id": ["a"], "data": {"text": "x"}}, "external_id"),
        ({"external_id": "a" * 256, "data": {"text": "x"}}, "external_id"),
        ({"external_id": "a"}, "data"),
        ({"external_id": "a", "data": "text"}, "data"),
        (ok_row(metadata=[1]), "metadata"),
        (ok_row(domain=3), "domain"),
        (ok_row(domain="a//b"), "domain"),
        (ok_row(language="english please"), "language"),
        (ok_row(language=5), "language"),
        (ok_row(gold="fish"), "gold"),
        (ok_row(gold=1), "gold"),
        (ok_row(predictions={"model_version": "v"}), "predictions"),
        (ok_row(predictions=["v1"]), "predictions[0]"),
        (ok_row(predictions=[{"probabilities": {"cat": 1.0}}]), "predictions[0].model_version"),
        (ok_row(predictions=[{"model_version": "v"}]), "predictions[0].probabilities"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": [0.5, 0.5]}]), "predictions[0].probabilities"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"fish": 1.0}}]),
            "predictions[0].probabilities.fish"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": 0.5, "dog": 0.4}}]),
            "predictions[0].probabilities"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": 1.5, "dog": -0.5}}]),
            "predictions[0].probabilities.cat"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": "0.5", "dog": 0.5}}]),
            "predictions[0].probabilities.cat"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": True}}]),
            "predictions[0].probabilities.cat"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": math.nan, "dog": 1.0}}]),
            "predictions[0].probabilities.cat"),
        (ok_row(predictions=[{"model_version": "v", "probabilities": {"cat": 1.0}},
                             {"model_version": "v", "probabilities": {"dog": 1.0}}]), "predictions[1]"),
        (ok_row(annotations=[{"label": "cat"}]), "annotations[0].annotator"),
        (ok_row(annotations=[{"annotator": "a"}]), "annotations[0].label"),
        (ok_row(annotations=[{"annotator": "a", "label": "fish"}]), "annotations[0].label"),
        (ok_row(annotations=[{"annotator": "a", "label": "cat", "role": "boss"}]), "annotations[0].role"),
        (ok_row(annotations=[{"annotator": "a", "label": "cat", "submitted_at": "yesterday"}]),
            "annotations[0].submitted_at"),
        (ok_row(annotations=[{"annotator": "a", "label": "cat", "time_spent_ms": -1}]), "annotations[0].time_spent_ms"),
        (ok_row(annotations=[{"annotator": "a", "label": "cat", "confidence": 9}]), "annotations[0].confidence"),
        (ok_row(annotations=[{"annotator": "a", "label": "cat", "factors": "sarcasm"}]), "annotations[0].factors"),
        ("just a string", "(row)"),
        (MalformedRow([("metadata", "not valid JSON")]), "metadata"),
    ],
)
def test_each_bad_field_is_named_with_its_row(row, field):
    fields, errors = errors_of([ok_row(external_id="first"), row])
    assert (1, field) in fields, errors
    assert all(e.row == 1 for e in errors)
    assert all(e.message for e in errors)


def test_probabilities_within_tolerance_are_accepted_and_just_outside_rejected():
    within = {"cat": 0.5, "dog": 0.5 - 5e-7}
    outside = {"cat": 0.5, "dog": 0.5 - 2e-6}
    _, errors = validate_rows([ok_row(predictions=[{"model_version": "v", "probabilities": within}])], CLASSES)
    assert errors == []
    fields, _ = errors_of([ok_row(predictions=[{"model_version": "v", "probabilities": outside}])])
    assert fields == [(0, "predictions[0].probabilities")]


def test_duplicate_external_id_in_a_batch_names_the_later_row_and_the_first():
    fields, errors = errors_of([ok_row(), ok_row(external_id="b"), ok_row()])
    assert fields == [(2, "external_id")]
    assert "row 0" in errors[0].message


def test_every_error_is_listed_not_just_the_first():
    rows = [
        ok_row(external_id="a", gold="fish", language=7),
        ok_row(external_id="b"),
        {"data": {}},
        ok_row(external_id="d", predictions=[{"model_version": "v", "probabilities": {"cat": 2, "emu": 0.1}}]),
    ]
    fields, _ = errors_of(rows)
    assert set(fields) == {
        (0, "gold"), (0, "language"), (2, "external_id"),
        (3, "predictions[0].probabilities.cat"), (3, "predictions[0].probabilities.emu"),
    }


def test_a_batch_with_errors_returns_no_rows():
    rows, errors = validate_rows([ok_row(), ok_row(external_id="b", gold="fish")], CLASSES)
    assert rows == [] and len(errors) == 1


class TestLabelStudio:
    def task(self, **overrides):
        task = {
            "id": 17,
            "data": {"text": "tweets at night"},
            "predictions": [{"model_version": "ls-1", "score": 0.8,
                             "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                         "value": {"choices": ["bird"]}}]}],
        }
        task.update(overrides)
        return task

    def test_score_goes_to_the_chosen_class_and_the_rest_is_spread_evenly(self):
        rows, errors = validate_rows([self.task()], CLASSES)
        assert errors == []
        probabilities = rows[0].predictions[0].probabilities
        assert probabilities["bird"] == pytest.approx(0.8)
        assert probabilities["cat"] == pytest.approx(0.1)
        assert probabilities["dog"] == pytest.approx(0.1)
        assert sum(probabilities.values()) == pytest.approx(1.0)

    def test_external_id_is_the_task_id_without_data_external_id(self):
        rows, _ = validate_rows([self.task()], CLASSES)
        assert rows[0].external_id == "17"

    def test_data_external_id_wins_and_leaves_the_payload(self):
        rows, _ = validate_rows([self.task(data={"text": "x", "external_id": "ext-9"})], CLASSES)
        assert rows[0].external_id == "ext-9"
        assert rows[0].data == {"text": "x"}

    def test_meta_becomes_metadata(self):
        rows, _ = validate_rows([self.task(meta={"source": "ls"})], CLASSES)
        assert rows[0].metadata == {"source": "ls"}

    def test_annotations_map_choices_rationale_and_lead_time(self):
        annotation = {
            "completed_by": 4,
            "created_at": "2025-03-01T10:00:00.123Z",
            "lead_time": 2.5,
            "result": [
                {"type": "choices", "value": {"choices": ["dog"]}},
                {"type": "textarea", "value": {"text": ["barks"]}},
            ],
        }
        cancelled = {"completed_by": 5, "was_cancelled": True, "result": []}
        rows, errors = validate_rows([self.task(annotations=[annotation, cancelled])], CLASSES)
        assert errors == []
        (ann,) = rows[0].annotations
        assert (ann.annotator, ann.label, ann.rationale, ann.time_spent_ms) == ("label-studio-4", "dog", "barks", 2500)

    @pytest.mark.parametrize("prediction, field", [
        ({"model_version": "v", "result": [{"value": {"choices": ["bird"]}}]}, "predictions[0].score"),
        ({"model_version": "v", "score": 2, "result": [{"value": {"choices": ["bird"]}}]}, "predictions[0].score"),
        ({"model_version": "v", "score": 0.9, "result": [{"value": {"choices": ["emu"]}}]}, "predictions[0].result"),
        ({"model_version": "v", "score": 0.9, "result": [{"value": {"choices": ["cat", "dog"]}}]},
            "predictions[0].result"),
        ({"model_version": "v", "score": 0.9, "result": "cat"}, "predictions[0].result"),
    ])
    def test_bad_label_studio_predictions(self, prediction, field):
        fields, _ = errors_of([self.task(predictions=[prediction])])
        assert fields == [(0, field)]


@pytest.mark.parametrize("raw, expected", [
    (["cat", "dog"], [("cat", "1"), ("dog", "2")]),
    ([{"name": "cat", "hotkey": "2"}, "dog", "bird"], [("cat", "2"), ("dog", "1"), ("bird", "3")]),
    ([f"c{i}" for i in range(11)], [(f"c{i}", "1234567890"[i] if i < 10 else "") for i in range(11)]),
])
def test_classes_get_default_hotkeys_in_order(raw, expected):
    classes, errors = normalise_classes(raw)
    assert errors == []
    assert [(c.name, c.hotkey) for c in classes] == expected


@pytest.mark.parametrize("raw, field", [
    ("cat,dog", "classes"),
    (["cat"], "classes"),
    (["cat", "cat"], "classes[1]"),
    (["cat", ""], "classes[1]"),
    ([{"name": "cat", "hotkey": "1"}, {"name": "dog", "hotkey": "1"}], "classes[1].hotkey"),
    ([{"name": "cat", "hotkey": "ab"}, "dog"], "classes[0].hotkey"),
    (["cat", 3], "classes[1]"),
])
def test_bad_classes(raw, field):
    _, errors = normalise_classes(raw)
    assert field in [e.field for e in errors]


def test_row_error_serialises_to_the_wire_format():
    assert RowError(3, "gold", "bad").to_dict() == {"row": 3, "field": "gold", "message": "bad"}
