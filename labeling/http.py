"""HTTP helpers shared by the workbench pages of every app (labeling is the lowest app with pages)."""
from __future__ import annotations

import functools
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Item content is untrusted (anything an ML pipeline pushed). Autoescaping keeps it inert; this header is
# the second wall: only our own static scripts and styles run, images may be inline data or any web URL.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: https: http:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))


def content_security_policy(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Send the workbench's strict Content-Security-Policy with the view's responses."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    return wrapped
