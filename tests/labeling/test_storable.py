"""What both databases can store: pure checks, no database."""
import datetime as dt
import io
import json

import pytest

from labeling import formats, storable
from labeling.validation import RowValidator, normalise_classes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text, ünïcödé and emoji \U0001f600", None),
        ("a\x00b", storable.NUL_MESSAGE),
        ("lone \ud800 surrogate", storable.SURROGATE_MESSAGE),
        ("\udfff", storable.SURROGATE_MESSAGE),
        ("", None),
    ],
)
def test_text_problem(value, expected):
    assert storable.text_problem(value) == expected


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"data": {"text": "ok", "tags": ["a", "b\x00"]}}, "data.tags[1]", storable.NUL_MESSAGE),
        ({"external_id": "\x00", "data": {"text": "\x00"}}, "external_id", storable.NUL_MESSAGE),
        ({"data": {"k\x00": 1}}, "data", "has a key that " + storable.NUL_MESSAGE),
        ({"metadata": {"src": {"\ud801": "x"}}}, "metadata.src", "has a key that " + storable.SURROGATE_MESSAGE),
        ("x\x00", "(body)", storable.NUL_MESSAGE),
        ([{"a": 1}, {"b": "\x00"}], "[1].b", storable.NUL_MESSAGE),
    ],
)
def test_json_problem_names_the_field(value, field, message):
    assert storable.json_problem(value) == (field, message)


def test_json_problem_passes_clean_values_of_every_type():
    assert storable.json_problem({"a": [1, 2.5, True, None, {"b": "c"}], "n": 10**30}) is None


def test_json_nesting_is_bounded_without_recursion():
    just_inside = json.loads("[" * storable.MAX_JSON_DEPTH + "]" * storable.MAX_JSON_DEPTH)
    assert storable.json_problem(just_inside) is None
    deep = node = []
    for _ in range(10_000):  # deeper than Python's recursion limit: the check itself must not recurse
        node.append([])
        node = node[0]
    field, message = storable.json_problem({"data": {"x": deep}})
    assert field.startswith("data.x[0]") and message == storable.DEPTH_MESSAGE


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=20))), False),
        (dt.datetime(2026, 1, 1, tzinfo=dt.timezone(-dt.timedelta(hours=16))), False),
        (dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=15, minutes=59))), True),
        (dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))), True),
        (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), True),
    ],
)
def test_datetime_problem(value, ok):
    assert (storable.datetime_problem(value) is None) == ok


def test_to_utc_clamps_what_leaves_the_years_1_to_9999():
    assert storable.to_utc(dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == storable.UTC_MIN
    assert storable.to_utc(dt.datetime(9999, 12, 31, 23,
        tzinfo=dt.timezone(-dt.timedelta(hours=2)))) == storable.UTC_MAX
    plus_two = dt.datetime(2026, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert storable.to_utc(plus_two) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"external_id": "a\x00", "data": {"text": "t"}}, "external_id"),
        ({"external_id": "a", "data": {"text": "t\x00"}}, "data.text"),
        ({"external_id": "a", "data": {"te\x00xt": "t"}}, "data"),
        ({"external_id": "a", "data": {"text": "t"}, "metadata": {"k\x00": 1}}, "metadata"),
        ({"external_id": "a", "data": {"text": "t"},
          "annotations": [{"annotator": "ann", "label": "cat", "rationale": "because\x00"}]},
              "annotations[0].rationale"),
        ({"external_id": "a", "data": {"text": "\ud800"}}, "data.text"),
    ],
)
def test_ingest_rows_with_unstorable_text_are_errors_naming_row_and_field(row, field):
    item, errors = RowValidator(["cat", "dog"]).validate(7, row)
    assert item is None
    assert [(e.row, e.field) for e in errors] == [(7, field)]


def test_class_names_with_unstorable_text_are_refused():
    classes, errors = normalise_classes(["cat", "d\x00og", {"name": "bird", "hotkey": "\x00"}])
    assert [e.field for e in errors] == ["classes[1]", "classes[2].hotkey"]


def test_a_jsonl_line_nested_too_deep_is_a_row_error_not_a_recursion_error():
    deep = '{"external_id": "b", "data": {"x": ' + "[" * 10_000 + "]" * 10_000 + "}}\n"
    text = '{"external_id": "a", "data": {"text": "ok"}}\n' + deep
    rows = list(formats.read_rows(io.StringIO(text), "jsonl"))
    assert rows[0]["external_id"] == "a"
    assert storable.DEPTH_MESSAGE in rows[1].errors[0][1]
