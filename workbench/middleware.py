"""Request body limits, checked from the headers before anything reads the body."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.http import LARGE_BODY_ATTRIBUTE
from workbench.errors import error_response

BODY_FIELD = "(body)"


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


class RequestBodyLimitMiddleware:
    """A body over the view's limit gets a 413 naming the limit: settings.REQUEST_MAX_BYTES for every view,
    the view's own for those marked with core.http.accepts_large_body (item files). A body sent without
    Content-Length (chunked transfer encoding) gets a 411: a WSGI application reads only Content-Length
    bytes, so the view would otherwise see an empty body and answer something misleading."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("HTTP_TRANSFER_ENCODING") and _content_length(request) is None:
            return error_response(
                request, 411,
                "Send the request body with a Content-Length header; chunked transfer encoding is not accepted.",
                field=BODY_FIELD,
            )
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any,
        view_kwargs: Any) -> HttpResponse | None:
        length = _content_length(request) or 0
        limit_of = getattr(view_func, LARGE_BODY_ATTRIBUTE, None)
        limit = limit_of() if limit_of else settings.REQUEST_MAX_BYTES
        if length <= limit:
            return None
        what = "this address" if limit_of else "this address (item files go to the import page or the items API)"
        return error_response(
            request, 413, f"The request body is {length:,} bytes; {what} accepts at most {limit:,} bytes.",
            field=BODY_FIELD,
        )
