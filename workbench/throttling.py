"""API rate limits (settings.REST_FRAMEWORK's DEFAULT_THROTTLE_RATES, from the environment).

The annotators' work loop (claim, submit, decline, review) runs at a person's or a labeling client's pace,
far more requests a minute than anything else a user does, so it has its own scope, "work", and the general
per-user scope leaves it alone. Counts live in the default cache, i.e. in each web process's memory: with N
processes a client gets up to N times the rate, which bounds abuse without a shared store on the hot path.
"""
from __future__ import annotations

from typing import Any

from rest_framework import throttling
from rest_framework.request import Request
from rest_framework.settings import api_settings

# URL names of routing's work-loop endpoints (routing/api_urls.py).
WORK_LOOP_URL_NAMES = frozenset({"assignment-next", "assignment-submit", "assignment-decline", "assignment-review"})


def is_work_loop(request: Request) -> bool:
    match = request.resolver_match
    return match is not None and match.url_name in WORK_LOOP_URL_NAMES


class _RatesFromSettings:
    """DRF binds THROTTLE_RATES when the class is created; read them per request so a changed setting
    (a test's override) applies."""

    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Anonymous callers, per address: they can only be refused, so a low rate."""


class UserThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Everything but the work loop, per user (per address for anonymous callers)."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if is_work_loop(request):
            return True
        return super().allow_request(request, view)


class WorkLoopThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Claim, submit, decline and review, per user."""

    scope = "work"

    def allow_request(self, request: Request, view: Any) -> bool:
        if not is_work_loop(request):
            return True
        return super().allow_request(request, view)
