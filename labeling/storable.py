"""What either database can store, checked before a value reaches it. Pure: plain values in, problems out.

PostgreSQL refuses some values that SQLite stores without a word, so without these checks the same request
would be a 201 on one database and a 500 on the other:

* text and JSON (keys included) holding NUL (U+0000), or a lone UTF-16 surrogate (U+D800 to U+DFFF, which a
  JSON body can spell as `"\\ud800"`): PostgreSQL has no encoding for them;
* JSON nested more deeply than `MAX_JSON_DEPTH`: a bound that keeps parsing, storing and exporting clear of
  Python's recursion limit (a 10,000-deep document would otherwise be a RecursionError);
* datetimes with a UTC offset beyond +-15:59 (PostgreSQL's range); `to_utc` clamps those that leave Python's
  years 1 to 9999 once turned to UTC (SQLite's adapter would raise OverflowError);
* integers (ids, offsets) beyond a signed 64-bit `bigint`.

Each check names the offending field by a path such as `data.tags[2]` so the 400 can say where it is.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

# How a message names the request body (or a row) as a whole, when no field inside it is to blame.
BODY_FIELD = "(body)"
MAX_JSON_DEPTH = 64
BIGINT_MAX = 2**63 - 1
BIGINT_MIN = -(2**63)
UTC_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
UTC_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)
# PostgreSQL's timestamptz input accepts offsets up to 15:59 either side of UTC.
MAX_UTC_OFFSET = dt.timedelta(hours=15, minutes=59)
# How the API documents such a datetime: RFC 3339 with the offset in PostgreSQL's range.
DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-](0\d|1[0-5]):[0-5]\d)?$"
DATETIME_SCHEMA = {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
SURROGATE_MESSAGE = "contains a lone UTF-16 surrogate, which is not valid Unicode text"
DEPTH_MESSAGE = f"is nested more than {MAX_JSON_DEPTH} levels deep"


def text_problem(value: str) -> str | None:
    """Why the string cannot be stored, or None."""
    found = _UNSTORABLE_RE.search(value)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _clean(value: Any, max_depth: int) -> bool:
    """True if nothing in `value` is unstorable: the quick scan every ingest row takes (no paths built)."""
    search = _UNSTORABLE_RE.search
    if type(value) is str:
        return search(value) is None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            if depth >= max_depth:
                return False
            for key, child in node.items():
                if type(key) is str and search(key):
                    return False
                kind = type(child)
                if kind is str:
                    if search(child):
                        return False
                elif kind is dict or kind is list:
                    stack.append((child, depth + 1))
        elif type(node) is list:
            if depth >= max_depth:
                return False
            for child in node:
                kind = type(child)
                if kind is str:
                    if search(child):
                        return False
                elif kind is dict or kind is list:
                    stack.append((child, depth + 1))
    return True


def json_problem(value: Any, path: str = "", *, root: str = BODY_FIELD,
    max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """The first (field path, message) that makes a parsed JSON value unstorable, or None.

    Walks without recursion, so any depth is safe to check. A bad key is named by its parent's path (the key
    itself cannot be shown safely); `root` names the value itself."""
    if _clean(value, max_depth):
        return None
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            problem = text_problem(node)
            if problem:
                return where or root, problem
        elif isinstance(node, (dict, list)):
            if depth >= max_depth:
                return where or root, DEPTH_MESSAGE
            children = node.items() if isinstance(node, dict) else enumerate(node)
            below = []
            for key, child in children:
                if isinstance(key, str) and _UNSTORABLE_RE.search(key):
                    return where or root, f"has a key that {text_problem(key)}"
                if isinstance(child, (str, dict, list)):
                    below.append((child, _child(where, key), depth + 1))
            stack.extend(reversed(below))  # the first problem in document order is named
    return None


def datetime_problem(value: dt.datetime) -> str | None:
    """Why PostgreSQL would refuse this aware datetime (a UTC offset beyond +-15:59), or None."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return "has a UTC offset beyond +-15:59"
    return None


def to_utc(value: dt.datetime) -> dt.datetime:
    """The aware datetime in UTC; one that would fall before the year 1 or after 9999 there (0001-01-01T00:00
    at +01:00) is clamped to the first or last instant Python can hold, which compares the same way with
    every stored time."""
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        return UTC_MIN if value.year == 1 else UTC_MAX
