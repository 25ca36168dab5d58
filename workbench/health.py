"""Probes for load balancers and process supervisors: `/healthz` (the process answers) and `/readyz` (every
database answers and the background queue keeps up).

They are answered by a middleware at the top of the stack, before host validation and the HTTPS redirect: a
load balancer probes each backend by its address over plain HTTP, which ALLOWED_HOSTS and
SECURE_SSL_REDIRECT would otherwise refuse (400) or redirect (301). They need no login and reveal nothing but
their status and the queue lag.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

logger = logging.getLogger(__name__)

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"


@dataclass(frozen=True)
class Readiness:
    databases: dict[str, str]  # alias -> "ok" or "unreachable"
    queue_lag_seconds: float | None  # age of the oldest task no worker has taken yet; None when none waits
    max_queue_lag_seconds: float | None  # None: lag does not count

    @property
    def ready(self) -> bool:
        databases_ok = all(state == "ok" for state in self.databases.values())
        lag_ok = (self.max_queue_lag_seconds is None or self.queue_lag_seconds is None
                  or self.queue_lag_seconds <= self.max_queue_lag_seconds)
        return databases_ok and lag_ok

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ready else "unavailable",
            "databases": self.databases,
            "queue_lag_seconds": None if self.queue_lag_seconds is None else round(self.queue_lag_seconds, 1),
            "max_queue_lag_seconds": self.max_queue_lag_seconds,
        }


def queue_lag(oldest_waiting: datetime | None, *, now: datetime) -> float | None:
    return None if oldest_waiting is None else max(0.0, (now - oldest_waiting).total_seconds())


def readiness_check(*, now: datetime) -> Readiness:
    """One cheap query per database: `SELECT 1` on any other database, and on the default one the oldest
    waiting django-q task (the ORM broker stamps a task's `lock` with its enqueue time and moves it into the
    future while a worker holds it, so `lock <= now` is exactly the tasks still waiting)."""
    databases: dict[str, str] = {}
    oldest = None
    for alias in settings.DATABASES:
        try:
            if alias == "default":
                oldest = (OrmQ.objects.using(alias).filter(key=Conf.CLUSTER_NAME, lock__lte=now)
                          .aggregate(oldest=Min("lock"))["oldest"])
            else:
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT 1")
            databases[alias] = "ok"
        except DatabaseError:
            # The reason goes to the log, not to an unauthenticated caller (it may name hosts).
            logger.warning("readiness: database %r unreachable", alias, exc_info=True)
            databases[alias] = "unreachable"
    return Readiness(databases=databases, queue_lag_seconds=queue_lag(oldest, now=now),
                     max_queue_lag_seconds=settings.READYZ_MAX_QUEUE_LAG_SECONDS)


class HealthCheckMiddleware:
    """Answers the two probes before any other middleware runs; every other request passes through."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info.rstrip("/")
        if path == HEALTHZ_PATH:
            return _no_store(JsonResponse({"status": "ok"}))
        if path == READYZ_PATH:
            result = readiness_check(now=timezone.now())
            return _no_store(JsonResponse(result.as_dict(), status=200 if result.ready else 503))
        return self.get_response(request)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response
