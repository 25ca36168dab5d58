"""HTTP helpers shared by the pages of every app."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


# Item content is untrusted (anything an ML pipeline pushed). Autoescaping keeps it inert; this header is
# the second wall: only our own static scripts and styles run, images may be inline data or come over https
# from the hosts an admin lists in settings.ITEM_IMAGE_HOSTS (never plain http, never any host).
def content_security_policy() -> str:
    image_hosts = (host if "://" in host else f"https://{host}" for host in settings.ITEM_IMAGE_HOSTS)
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        " ".join(("img-src 'self' data:", *image_hosts)),
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


# Paths whose pages keep no policy of this header's: the OpenAPI docs page (drf-spectacular's Swagger UI)
# starts with an inline script and renders only the schema, never item content.
CSP_EXEMPT_PREFIXES = ("/api/docs/",)


class ContentSecurityPolicyMiddleware:
    """Send the workbench's strict Content-Security-Policy with every response: the workbench pages, the
    login page and the admin alike (the admin shows item content too). A view may set its own header.
    With DEBUG on, Django's technical error pages (inline styles and scripts) go without."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith(CSP_EXEMPT_PREFIXES):
            return response
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        return response


# Room for multipart boundaries and headers around an uploaded file of up to INGEST_MAX_BYTES.
MULTIPART_SLACK_BYTES = 64 * 1024
# Read by workbench.middleware.RequestBodyLimitMiddleware: a callable giving the view's body limit in bytes.
LARGE_BODY_ATTRIBUTE = "max_body_bytes"


def ingest_body_limit() -> int:
    return settings.INGEST_MAX_BYTES + MULTIPART_SLACK_BYTES


def accepts_large_body(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view that takes item files: its request bodies may reach INGEST_MAX_BYTES (plus multipart
    framing) instead of the REQUEST_MAX_BYTES every other view accepts."""
    setattr(view, LARGE_BODY_ATTRIBUTE, ingest_body_limit)
    return view
