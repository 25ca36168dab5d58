"""Refuse a request whose URL path or query string holds text no database here can store (NUL, lone
surrogates), with a 400 naming the parameter, before a view could filter or look up by it: PostgreSQL
would answer a 500 where SQLite quietly matches nothing."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from labeling.storable import text_problem

API_PREFIX = "/api/"


def request_problem(request: HttpRequest) -> tuple[str, str] | None:
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
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = request_problem(request)
        if problem is None:
            return self.get_response(request)
        field, message = problem
        if request.path_info.startswith(API_PREFIX):
            return JsonResponse({"errors": [{"field": field, "message": message}]}, status=400)
        return HttpResponseBadRequest(f"{field} {message}.", content_type="text/plain; charset=utf-8")
