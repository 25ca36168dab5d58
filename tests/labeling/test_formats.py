"""File readers and writers: no database."""
import csv
import io
import json

import pytest

from labeling import formats
from labeling.validation import MalformedRow, validate_rows

CLASSES = ("cat", "dog")


def test_jsonl_skips_blank_lines_and_marks_malformed_ones():
    text = '{"external_id": "a", "data": {}}\n\n{"external_id": "b", "data": \n{"external_id": "c", "data": {}}\n'
    rows = list(formats.read_jsonl(io.StringIO(text)))
    assert len(rows) == 3
    assert isinstance(rows[1], MalformedRow)
    assert "line 3" in rows[1].errors[0][1]
    assert rows[2]["external_id"] == "c"


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_json_array_is_decoded_element_by_element_across_chunk_boundaries(monkeypatch, chunk):
    monkeypatch.setattr(formats, "_CHUNK_CHARS", chunk)
    rows = [{"external_id": str(i), "data": {"text": "é" * i, "n": 12345.678 * i}} for i in range(30)]
    text = " [\n" + ",\n  ".join(json.dumps(r) for r in rows) + "\n] \n"
    assert list(formats.read_json_array(io.StringIO(text))) == rows


@pytest.mark.parametrize("text", ["[]", "  [ ]  "])
def test_empty_json_array(text):
    assert list(formats.read_json_array(io.StringIO(text))) == []


@pytest.mark.parametrize("text, message", [
    ('[{"a": 1}, {"a": }]', "not valid JSON"),
    ('[{"a": 1} {"a": 2}]', "expected ','"),
    ('[{"a": 1},', "not valid JSON"),
    ('[{"a": 1}', "not closed"),
    ('[{"a": 1}] {"a": 2}', "unexpected text after the JSON array"),
    ('[{"a": 1}, ]', "not valid JSON"),
])
def test_malformed_json_array_ends_with_a_malformed_row(text, message):
    rows = list(formats.read_json_array(io.StringIO(text)))
    assert rows[0] == {"a": 1}
    assert isinstance(rows[-1], MalformedRow)
    assert message in rows[-1].errors[0][1]


class CountingStream(io.StringIO):
    def __init__(self, text: str):
        super().__init__(text)
        self.chars_read = 0

    def read(self, size: int = -1) -> str:
        chunk = super().read(size)
        self.chars_read += len(chunk)
        return chunk


def test_json_array_streams_rows_without_reading_the_whole_file():
    rows = [{"external_id": str(i), "data": {"text": "x" * 100}} for i in range(5000)]
    stream = CountingStream(json.dumps(rows))
    reader = formats.read_json_array(stream)
    assert next(reader) == rows[0]
    assert stream.chars_read < len(stream.getvalue()) / 10
    assert list(reader) == rows[1:]


def test_json_array_numbers_decode_as_json_loads_does():
    text = '[{"n": 1, "f": 0.25, "e": 1e3, "neg": -7, "list": [1, [2.5, null, true]]}]'
    (row,) = formats.read_json_array(io.StringIO(text))
    assert row == json.loads(text)[0]
    assert [type(v) for v in row.values()][:4] == [int, float, float, int]


def test_json_reader_refuses_a_non_array():
    with pytest.raises(formats.FormatError):
        list(formats.read_json_array(io.StringIO('{"a": 1}')))


def test_csv_columns_map_to_row_fields():
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["external_id", "text", "data.title", "metadata.source", "predictions", "domain", "language",
        "gold", "status"])
    writer.writerow(["a", "hello", "Hi", "crm", json.dumps([{"model_version": "v", "probabilities": {"cat": 1}}]),
                     "pets/cats", "en", "cat", "labeled"])
    writer.writerow(["b", "", "", "", "", "", "", "", ""])
    out.seek(0)
    rows = list(formats.read_csv(out))
    assert rows[0] == {
        "external_id": "a", "data": {"text": "hello", "title": "Hi"}, "metadata": {"source": "crm"},
        "predictions": [{"model_version": "v", "probabilities": {"cat": 1}}], "domain": "pets/cats",
        "language": "en", "gold": "cat",
    }
    assert rows[1] == {"external_id": "b"}


def test_csv_bad_json_cell_names_the_column():
    text = "external_id,data,metadata\na,{\"text\": \"x\"},{not json\n"
    (row,) = list(formats.read_csv(io.StringIO(text)))
    _, errors = validate_rows([row], CLASSES)
    assert [(e.row, e.field) for e in errors] == [(0, "metadata")]


@pytest.mark.parametrize("name, content_type, head, expected", [
    ("items.jsonl", "", "", "jsonl"),
    ("items.NDJSON", "", "", "jsonl"),
    ("items.csv", "", "", "csv"),
    ("tasks.json", "", "[{", "json"),
    ("lines.json", "", '{"a": 1}\n', "jsonl"),
    ("upload", "text/csv", "", "csv"),
    ("upload", "application/x-ndjson", "", "jsonl"),
    ("upload", "application/octet-stream", "  [", "json"),
    ("upload", "", '{"external_id"', "jsonl"),
    ("upload", "", "external_id,text", "csv"),
])
def test_detect_format(name, content_type, head, expected):
    assert formats.detect_format(name=name, content_type=content_type, head=head) == expected


EXPORTED = {
    "external_id": "a-1", "data": {"text": "purrs, \"loudly\"\nat night"}, "status": "labeled",
    "final_label": "cat", "final_source": "expert", "final_confidence": 0.9,
    "annotations": [{"annotator": "ann", "label": "cat", "rationale": "whiskers", "factors": ["f"], "role": "expert",
                     "time_spent_ms": 1500, "submitted_at": "2025-01-01T00:00:00+00:00", "confidence": 5}],
    "gold": "cat", "metadata": {"k": 1}, "domain": "pets/cats", "language": "en",
    "predictions": [{"model_name": "m", "model_version": "v1", "probabilities": {"cat": 0.6, "dog": 0.4}}],
}


@pytest.mark.parametrize("fmt, reader", [("jsonl", "jsonl"), ("csv", "csv"), ("label-studio", "json")])
def test_every_export_format_reads_back_to_the_same_rows(fmt, reader):
    text = "".join(formats.write_rows([EXPORTED, {**EXPORTED, "external_id": "a-2", "gold": None}], fmt))
    back, errors = validate_rows(list(formats.read_rows(io.StringIO(text), reader)), CLASSES)
    assert errors == []
    direct, _ = validate_rows([EXPORTED, {**EXPORTED, "external_id": "a-2", "gold": None}], CLASSES)
    assert back == direct


def test_label_studio_export_is_a_json_array_of_tasks():
    text = "".join(formats.write_label_studio([EXPORTED]))
    (task,) = json.loads(text)
    assert task["data"]["external_id"] == "a-1"
    assert task["predictions"][0]["score"] == 0.6
    assert task["predictions"][0]["result"][0]["value"] == {"choices": ["cat"]}
    assert task["annotations"][0]["result"][0]["value"] == {"choices": ["cat"]}
    assert task["annotations"][0]["lead_time"] == 1.5


class TestCsvFormulaEscaping:
    """OWASP's CSV injection rule: cells a spreadsheet would run as formulas start with a quote."""

    @pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
    def test_formula_cells_are_quoted_in_the_export(self, value):
        text = "".join(formats.write_csv([{"external_id": value, "data": {"text": "t"}, "final_label": value}]))
        record = next(csv.DictReader(io.StringIO(text)))
        assert record["external_id"] == "'" + value
        assert record["final_label"] == "'" + value

    @pytest.mark.parametrize("value", ["=1+1", "'=1+1", "''-x", "'plain", "plain", "a=b", "-"])
    def test_an_exported_value_imports_back_unchanged(self, value):
        text = "".join(formats.write_csv([{"external_id": value, "data": {"text": "t"}, "gold": value}]))
        (row,) = formats.read_rows(io.StringIO(text), "csv")
        assert (row["external_id"], row["gold"]) == (value, value)
