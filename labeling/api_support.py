"""What every endpoint under /api/ shares, so the API answers bad input in one shape and its published schema
says so: the error shapes, the exception handler, the schema generator, strict parameters and pagination.

Errors: a 400 is `{"errors": [{"field", "message"}, ...]}` (ingest adds `row` and `error_count`); any other
4xx is `{"detail": "..."}` (workbench.errors answers the same way outside DRF's views, e.g. an unknown
/api/ address). Labeling is the lowest app with endpoints, so routing and dashboards use these.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.fields import SkipField, get_error_detail
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.storable import BODY_FIELD, DATETIME_SCHEMA


class StrictTextMixin:
    """Only a JSON string is text: DRF's CharField also takes numbers (0 becomes "0"), which the schema's
    `type: string` says is invalid."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(StrictTextMixin, serializers.CharField):
    pass


class StrictSlugField(StrictTextMixin, serializers.SlugField):
    pass


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The bad field or query parameter, as a path (e.g. data.text).")
    message = serializers.CharField()
    row = serializers.IntegerField(required=False, allow_null=True, help_text="Ingest only: 0-based row index.")


class ErrorsSerializer(serializers.Serializer):
    errors = FieldErrorSerializer(many=True)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


ERRORS = OpenApiResponse(ErrorsSerializer, description="Bad input: every problem with its field; nothing was changed.")
DETAIL = DetailSerializer
# Answers any endpoint may give; an operation's own description of a code wins.
DEFAULT_ERROR_RESPONSES = {
    "400": ERRORS,
    "401": OpenApiResponse(DETAIL, description="No credentials, or an unknown or inactive token."),
    "403": OpenApiResponse(DETAIL, description="Authenticated, but not allowed to do this."),
    "404": OpenApiResponse(DETAIL, description="No such object (or not yours to see)."),
}


# DRF's codes for "not the documented type"; the rest (required, blank, ranges, choices) is the service's to
# check, in the domain's words.
_TYPE_CODES = frozenset({"invalid", "not_a_list", "not_a_dict", "null"})


def _flat_details(detail: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """DRF's nested error detail ({field: [messages]}, lists of those...) as (field path, message) pairs."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = BODY_FIELD if key == "non_field_errors" and not prefix else (
                f"{prefix}.{key}" if prefix else str(key))
            yield from _flat_details(value, name)
    elif isinstance(detail, list):
        nested = any(isinstance(value, (dict, list)) for value in detail)
        for index, value in enumerate(detail):
            yield from _flat_details(value, f"{prefix}[{index}]" if nested else prefix)
    else:
        yield prefix or BODY_FIELD, detail


def field_errors(detail: Any) -> list[dict[str, str]]:
    """DRF's nested error detail as the API's flat {field, message} rows."""
    return [{"field": field, "message": str(message)} for field, message in _flat_details(detail)]


def type_errors(serializer: serializers.Serializer, data: dict[str, Any]) -> list[dict[str, str]]:
    """The fields of `data` whose type is not what the request's documented serializer says (a number
    for a text field, a string for a list...), as {field, message} rows.

    What a partial validation of `data` by the serializer finds, field by field: the fields given are
    validated in the serializer's order by the serializer's own field objects, built once with it (a fresh
    serializer deep-copies every field first, which cost more than the rest of the check on the work loop,
    run on every submit). Validating a field keeps no state in it. The serializer's validate_<field>
    methods and validators are not run: they check values, not types."""
    found: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        try:
            field.run_validation(data[name])
        except serializers.ValidationError as exc:
            found[name] = exc.detail
        except DjangoValidationError as exc:
            found[name] = get_error_detail(exc)
        except SkipField:
            pass
    return [
        {"field": field.split(".")[0].split("[")[0], "message": str(message)}
        for field, message in _flat_details(found)
        if getattr(message, "code", None) in _TYPE_CODES
    ]


def int_param(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within [minimum, maximum] (absent or empty: the default); anything
    else is a 400 naming it. Document it with `int_schema(minimum, maximum)`."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise exceptions.ValidationError({name: [f"must be a whole number, not {raw[:40]!r}"]}) from None
    if not minimum <= value <= maximum:
        raise exceptions.ValidationError({name: [f"must be from {minimum} to {maximum}"]})
    return value


def int_schema(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


# Query parameters where an empty value means "not given" (the pages' forms send them so).
EMPTY = {"type": "string", "maxLength": 0}
DATE_OR_EMPTY = {"anyOf": [{"type": "string", "format": "date"}, EMPTY]}
DATE_OR_DATETIME_OR_EMPTY = {"anyOf": [{"type": "string", "format": "date"}, DATETIME_SCHEMA, EMPTY]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with 400s (validation and parse errors) in the API's `{"errors": [...]}` shape."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, (exceptions.ValidationError, exceptions.ParseError)):
        errors = getattr(exc, "errors", None) or field_errors(exc.detail)
        response.data = {"errors": errors}
    return response


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, with the error answers every operation may give (DEFAULT_ERROR_RESPONSES)."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        if direction == "response":
            for code, response in DEFAULT_ERROR_RESPONSES.items():
                if code not in bodies:
                    bodies[code] = self._get_response_for_code(response, code, direction=direction)
        return bodies


class StrictCursorPagination(CursorPagination):
    """Cursor pagination whose `page_size` is checked, not silently replaced by the default when it is not a
    whole number in range (DRF's behaviour, which accepts `page_size=null`)."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError({self.page_size_query_param: [
                f"must be a whole number from 1 to {self.max_page_size}, not {raw!r}"
            ]})
        return size

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        # The position is an id here: anything else (or an id past bigint) would reach the database.
        if cursor is not None and cursor.position is not None:
            if not cursor.position.isdigit() or int(cursor.position) >= 2**63:
                raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters
