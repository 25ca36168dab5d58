"""Request checks made before any view runs: body limits (from the headers, before anything reads the body)
and text in the URL that no database here can store; the request's principal; and the pages of a view's
expected refusals."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from core.http import LARGE_BODY_ATTRIBUTE
from labeling import memberships
from labeling.storable import text_problem
from workbench.errors import error_response, page_not_found, permission_denied

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


def unstorable_parameter(request: HttpRequest) -> tuple[str, str] | None:
    """(parameter, problem) for the first part of the URL path or query string holding text no database
    here can store (labeling.storable), or None."""
    problem = text_problem(request.path_info)
    if problem:
        return "(path)", problem
    for name, values in request.GET.lists():
        problem = text_problem(name)
        if problem:
            return "(query)", f"has a parameter name that {problem}"
        for value in values:
            problem = text_problem(value)
            if problem:
                return name, problem
    return None


class StorableRequestMiddleware:
    """Refuse a request whose path or query string holds NUL or a lone surrogate with a 400 naming the
    parameter, before a view filters or looks up by it: PostgreSQL would answer a 500 where SQLite quietly
    matches nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = unstorable_parameter(request)
        if found is None:
            return self.get_response(request)
        field, problem = found
        return error_response(request, 400, f"{field} {problem}.", field=field)


class AccessMiddleware:
    """Gives every request its `principal` (core.access), read on first use: after DRF has authenticated
    an API request (DRF sets `user` and `auth` on the underlying request), so a token client is seen as
    one. Requests that never ask cost nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.principal = SimpleLazyObject(  # type: ignore[attr-defined]
            lambda: memberships.principal_for(user=getattr(request, "user", None), auth=getattr(request, "auth", None))
        )
        return self.get_response(request)


class ExpectedRefusalMiddleware:
    """A view's "not found" (Http404) and "not for you" (PermissionDenied) answered with the workbench's own
    page (its navigation, the view's sentence) with DEBUG on too: Django's DEBUG 404 page lists every URL
    pattern, and `make run` serves the demo with DEBUG on. Answered here, before Django's exception handling,
    these go to the log as django.request's one line per 4xx ("Forbidden: /queue/"), not with the traceback
    Django attaches to a PermissionDenied: they are answers, not faults. An address that matches no URL
    (Resolver404, raised before any view) keeps Django's handling: the styled 404 without DEBUG, the URL
    list with it, which is what a developer mistyping an address wants."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, PermissionDenied):
            return permission_denied(request, exception)
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
