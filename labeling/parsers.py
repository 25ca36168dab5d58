"""The API's JSON parser: a body that cannot be stored is a 400 naming the field, before any view sees it."""
from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from labeling.storable import BODY_FIELD, DEPTH_MESSAGE, json_problem

_ROW_PATH_RE = re.compile(r"^\[(\d+)\]\.?(.*)$")


class UnstorableBody(ParseError):
    """The body parsed, but holds something no database here can store (see labeling.storable). `row` is the
    index in a top-level array (an ingest batch), `field` the path inside it."""

    def __init__(self, field: str, message: str):
        found = _ROW_PATH_RE.match(field)
        self.row = int(found.group(1)) if found else None
        self.field = (found.group(2) or "(row)") if found else field
        error = {"field": self.field, "message": message}
        self.errors = [error if self.row is None else {"row": self.row, **error}]
        super().__init__(f"{field}: {message}")


class StorableJSONParser(JSONParser):
    """DRF's JSONParser, plus: nesting bounded (deep documents are a 400, not a RecursionError) and text
    checked for what PostgreSQL cannot store, so both databases give the same answer."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise UnstorableBody(BODY_FIELD, DEPTH_MESSAGE) from None
        problem = json_problem(data, root=BODY_FIELD)
        if problem is not None:
            raise UnstorableBody(*problem)
        return data
