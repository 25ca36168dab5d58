"""File formats for import and export: readers turn a text stream into rows, writers turn rows into text.

Pure: no ORM. Readers stream (a JSON array is decoded element by element) so a file of millions of rows
is never held in memory, and a line or cell they cannot parse becomes a `MalformedRow` that the validator
reports with its row index, instead of stopping the read.

Formats: `jsonl` (one object per line; blank lines skipped), `json` (an array of objects, e.g. a Label
Studio export), `csv` (a header row; see `CSV_JSON_COLUMNS` and `csv_row`).
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

import ijson

from labeling.storable import DEPTH_MESSAGE
from labeling.validation import MalformedRow

FORMATS = ("jsonl", "json", "csv")
EXPORT_FORMATS = ("jsonl", "csv", "label-studio")
CSV_JSON_COLUMNS = ("data", "metadata", "predictions", "annotations")
CSV_EXPORT_COLUMNS = (
    "external_id", "data", "status", "final_label", "final_source", "final_confidence", "annotations", "gold",
    "metadata", "domain", "language", "predictions",
)
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "label-studio": "application/json",
}
EXTENSIONS = {"jsonl": "jsonl", "csv": "csv", "label-studio": "json"}
_CHUNK_CHARS = 1 << 16
_FORMULA_RE = re.compile("'*[=+\\-@\t\r]")
_ESCAPED_FORMULA_RE = re.compile("'+[=+\\-@\t\r]")


class FormatError(ValueError):
    """The stream cannot be read at all in the given format (as opposed to one bad row)."""


def detect_format(*, name: str = "", content_type: str = "", head: str = "") -> str:
    """Pick a reader by file extension, then content type, then the first non-blank character."""
    lowered = name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".csv", "csv"), (".json", "json")):
        if lowered.endswith(suffix):
            if fmt == "json" and head.lstrip().startswith("{"):
                return "jsonl"  # a .json file holding one object per line
            return fmt
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"}:
        return "jsonl"
    if ctype in {"text/csv", "application/csv"}:
        return "csv"
    stripped = head.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        return "jsonl"
    return "csv"


def read_rows(stream: TextIO, fmt: str) -> Iterator[Any]:
    if fmt == "jsonl":
        return read_jsonl(stream)
    if fmt == "json":
        return read_json_array(stream)
    if fmt == "csv":
        return read_csv(stream)
    raise FormatError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def read_jsonl(stream: TextIO) -> Iterator[Any]:
    for line_no, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = MalformedRow([("(row)", f"line {line_no} is not valid JSON: {exc.msg} at column {exc.colno}")])
        except RecursionError:
            row = MalformedRow([("(row)", f"line {line_no} {DEPTH_MESSAGE}")])
        yield row


class _Utf8Reader:
    """The binary file ijson reads, over the text stream the other readers take (decoding, and so a
    UnicodeDecodeError, stays with the caller's TextIOWrapper). Remembers the last non-blank character
    read: when the text ends early, a final ',' means a row is missing rather than the closing ']'."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.last = ""

    def read(self, size: int) -> bytes:
        chunk = self.stream.read(size)
        if stripped := chunk.rstrip():
            self.last = stripped[-1]
        return chunk.encode("utf-8")


def _parser_message(exc: Exception) -> str:
    # yajl follows its message with a picture of the text around the error: keep the first line.
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _at_end(exc: Exception) -> bool:
    """The parser ran out of text (yajl says "premature EOF", ijson's Python backend "Incomplete JSON")."""
    return any(word in str(exc) for word in ("premature EOF", "Incomplete JSON"))


def read_json_array(stream: TextIO) -> Iterator[Any]:
    """Decode a top-level JSON array one element at a time (ijson), in constant memory."""
    reader = _Utf8Reader(stream)
    events = ijson.parse(reader, buf_size=_CHUNK_CHARS, use_float=True)
    try:
        _, event, _ = next(events)
    except (ijson.JSONError, StopIteration):
        event = None
    if event != "start_array":
        raise FormatError("expected a JSON array of rows")
    depth = 1  # inside the top-level array
    builder: ijson.ObjectBuilder | None = None
    try:
        for _, event, value in events:
            if depth == 1 and event == "end_array":
                depth = 0
                continue
            if builder is None:
                builder = ijson.ObjectBuilder()
            builder.event(event, value)
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
            if depth == 1:
                yield builder.value
                builder = None
    except ijson.JSONError as exc:
        if depth == 0:
            yield MalformedRow([("(row)", "unexpected text after the JSON array")])
        elif builder is not None or (_at_end(exc) and reader.last == ","):
            yield MalformedRow([("(row)", f"not valid JSON: {_parser_message(exc)}")])
        elif _at_end(exc):
            yield MalformedRow([("(row)", "the JSON array is not closed")])
        elif "expect ','" in str(exc):
            yield MalformedRow([("(row)", "expected ',' or ']' between rows")])
        else:
            yield MalformedRow([("(row)", f"not valid JSON: {_parser_message(exc)}")])


def read_csv(stream: TextIO) -> Iterator[Any]:
    """CSV columns: `external_id`; `data` (a JSON object) or `text`; `metadata`, `predictions`, `annotations`
    as JSON; `domain`, `language`, `gold` as plain text; `data.<key>` / `metadata.<key>` columns set one key.
    Empty cells count as absent. Other columns (the export's `status`, `final_label`...) are ignored."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        return
    for record in reader:
        yield csv_row(record, line_no=reader.line_num)


def csv_row(record: Mapping[str, str | None], *, line_no: int | None = None) -> Any:
    row: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    where = f" (line {line_no})" if line_no is not None else ""
    for column, cell in record.items():
        if column is None:
            errors.append(("(row)", f"more cells than header columns{where}"))
            continue
        if cell is None or cell == "":
            continue
        column = column.strip()
        if column in CSV_JSON_COLUMNS:
            try:
                row[column] = json.loads(cell)
            except json.JSONDecodeError as exc:
                errors.append((column, f"not valid JSON{where}: {exc.msg} at column {exc.colno}"))
            except RecursionError:
                errors.append((column, f"{DEPTH_MESSAGE}{where}"))
        elif column in {"external_id", "domain", "language", "gold"}:
            row[column] = csv_unescape(cell)
        elif column == "text":
            row.setdefault("_text", csv_unescape(cell))
        elif column.startswith("data.") or column.startswith("metadata."):
            part, key = column.split(".", 1)
            row.setdefault(f"_{part}_keys", {})[key] = csv_unescape(cell)
    if errors:
        return MalformedRow(errors)
    text = row.pop("_text", None)
    data_keys = row.pop("_data_keys", None)
    metadata_keys = row.pop("_metadata_keys", None)
    if "data" not in row and (text is not None or data_keys):
        row["data"] = {}
        if text is not None:
            row["data"]["text"] = text
    if data_keys and isinstance(row.get("data"), dict):
        row["data"].update(data_keys)
    if metadata_keys:
        if "metadata" not in row:
            row["metadata"] = {}
        if isinstance(row["metadata"], dict):
            row["metadata"].update(metadata_keys)
    return row


def csv_escape(cell: str) -> str:
    """OWASP's rule against CSV injection: a cell a spreadsheet would read as a formula (starting with =, +,
    -, @, tab or carriage return) gets a leading single quote. Cells that already start with quotes before
    such a character get one more, so `csv_unescape` restores every value exactly on import."""
    return "'" + cell if _FORMULA_RE.match(cell) else cell


def csv_unescape(cell: str) -> str:
    return cell[1:] if _ESCAPED_FORMULA_RE.match(cell) else cell


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield _dumps(row) + "\n"


def write_csv(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_EXPORT_COLUMNS)
    yield flush()
    for row in rows:
        cells = []
        for column in CSV_EXPORT_COLUMNS:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif column in CSV_JSON_COLUMNS or isinstance(value, (dict, list)):
                cells.append(_dumps(value))
            elif isinstance(value, str):
                cells.append(csv_escape(value))
            else:
                cells.append(value)
        writer.writerow(cells)
        yield flush()


def to_label_studio(row: Mapping[str, Any], *, data_key: str = "text") -> dict[str, Any]:
    """One exported item as a Label Studio task. Label Studio ignores the extra keys (probabilities, annotator,
    role...) that let the task import back into the workbench without loss."""
    to_name = data_key
    task: dict[str, Any] = {
        "data": {**row["data"], "external_id": row["external_id"]},
        "meta": row.get("metadata") or {},
        "predictions": [],
        "annotations": [],
    }
    for pred in row.get("predictions") or []:
        probabilities = pred["probabilities"]
        top = max(probabilities, key=probabilities.get)
        task["predictions"].append({
            "model_version": pred["model_version"],
            "model_name": pred.get("model_name", ""),
            "score": probabilities[top],
            "probabilities": probabilities,
            "result": [_choices_region(top, to_name)],
        })
    for ann in row.get("annotations") or []:
        result = [_choices_region(ann["label"], to_name)]
        if ann.get("rationale"):
            result.append({
                "from_name": "rationale", "to_name": to_name, "type": "textarea", "value": {"text": [ann["rationale"]]},
            })
        ms = ann.get("time_spent_ms")
        task["annotations"].append({
            "result": result,
            "created_at": ann.get("submitted_at"),
            "lead_time": ms / 1000 if ms is not None else None,
            "annotator": ann["annotator"],
            "label": ann["label"],
            "rationale": ann.get("rationale", ""),
            "factors": ann.get("factors", []),
            "role": ann.get("role"),
            "time_spent_ms": ms,
            "submitted_at": ann.get("submitted_at"),
            "confidence": ann.get("confidence"),
        })
    for key in ("domain", "language", "gold", "status", "final_label", "final_source", "final_confidence"):
        task[key] = row.get(key)
    return task


def _choices_region(label: str, to_name: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": to_name, "type": "choices", "value": {"choices": [label]}}


def write_label_studio(rows: Iterable[Mapping[str, Any]], *, data_key: str = "text") -> Iterator[str]:
    """A JSON array (what Label Studio imports), written one task at a time."""
    yield "["
    first = True
    for row in rows:
        yield ("\n" if first else ",\n") + _dumps(to_label_studio(row, data_key=data_key))
        first = False
    yield "\n]\n"


def encoded_blocks(chunks: Iterable[str], *, size: int = _CHUNK_CHARS) -> Iterator[bytes]:
    """The text of `chunks`, UTF-8 encoded, in blocks of about `size` characters: a response streamed a row
    at a time costs the server a write per row, more than writing the row's text (bench/export.py)."""
    pending: list[str] = []
    length = 0
    for chunk in chunks:
        pending.append(chunk)
        length += len(chunk)
        if length >= size:
            yield "".join(pending).encode()
            pending, length = [], 0
    if pending:
        yield "".join(pending).encode()


def write_rows(rows: Iterable[Mapping[str, Any]], fmt: str, *, data_key: str = "text") -> Iterator[str]:
    if fmt == "jsonl":
        return write_jsonl(rows)
    if fmt == "csv":
        return write_csv(rows)
    if fmt == "label-studio":
        return write_label_studio(rows, data_key=data_key)
    raise FormatError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
