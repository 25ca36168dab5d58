"""Error responses: the workbench's own styled pages, and under /api/ the API's documented error shapes,
`{"errors": [{"field": ..., "message": ...}]}` for bad content (400, 411, 413), else `{"detail": ...}`. Never a
list of URL patterns or a traceback (those are DEBUG's pages, and DEBUG is off outside a local demo)."""
from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
MESSAGE_HEADER = "X-Error-Message"
# Bad request, length required, request too large.
CONTENT_ERRORS = frozenset({400, 411, 413})

TITLES = {
    400: "Bad request",
    403: "Access denied",
    404: "Page not found",
    411: "Length required",
    413: "Request too large",
    500: "Something went wrong",
}


def wants_json(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def error_response(request: HttpRequest, status: int, message: str, *, field: str = "") -> HttpResponse:
    """The error as JSON under /api/, else as the styled error page (base.html's header and navigation)."""
    if wants_json(request):
        # The API's shapes (labeling.api_support): what is wrong with the request's content names its field;
        # any other refusal (403, 404...) is a `detail`, as DRF's own views answer it.
        if status in CONTENT_ERRORS:
            return JsonResponse({"errors": [{"field": field, "message": message}]}, status=status)
        return JsonResponse({"detail": message}, status=status)
    context = {"status": status, "title": TITLES.get(status, "Error"), "message": message}
    headers = {}
    if request.headers.get("HX-Request") == "true":
        # htmx does not swap an error page in (templates/_htmx_config.html): static/workbench.js shows this
        # sentence by the form instead, read from a header (JSON keeps it ASCII) rather than by parsing the page.
        headers[MESSAGE_HEADER] = json.dumps(message)
    try:
        body = render_to_string("error.html", context, request=request)
    except Exception:
        # The page names the signed-in user, which needs the session and the database: when those are
        # what failed (a 500), the page goes out without the navigation rather than not at all.
        logger.exception("error page for %s rendered without the request", status)
        body = render_to_string("error.html", context)
    return HttpResponse(body, status=status, headers=headers)


def _message(exception: BaseException | None, default: str) -> str:
    # Resolver404 carries the URL patterns tried: never shown. Other 403/404s carry a sentence of ours.
    if exception is None or isinstance(exception, Resolver404):
        return default
    message = exception.args[0] if exception.args else ""
    return message if isinstance(message, str) and message else default


def bad_request(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    return error_response(request, 400, "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    return error_response(request, 403, _message(exception, "You do not have access to this page."))


def page_not_found(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    return error_response(request, 404, _message(exception, "There is nothing at this address."))


def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(request, 500, "The server failed to answer this request. The error has been logged.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return error_response(
        request, 403,
        "The form was refused because it did not come with this site's security token (CSRF check: "
        f"{reason or 'failed'}). Reload the page and try again; cookies must be enabled.",
    )
