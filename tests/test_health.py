"""/healthz and /readyz: answered for load balancers by address over plain HTTP, without login; readiness
follows the databases and the background queue's lag."""
import datetime as dt

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from workbench import health


@pytest.fixture
def production_like(settings):
    # A load balancer's probe: an address the site does not serve by name, plain HTTP, HTTPS redirect on.
    settings.ALLOWED_HOSTS = ["labels.example.org"]
    settings.SECURE_SSL_REDIRECT = True


def probe(client, path):
    return client.get(path, HTTP_HOST="10.0.0.7:8000")


def queued_task(*, enqueued_ago: dt.timedelta | None = None, held_for: dt.timedelta | None = None) -> OrmQ:
    now = timezone.now()
    lock = now - enqueued_ago if enqueued_ago is not None else now + held_for
    return OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=lock)


def test_healthz_answers_without_the_database(client, production_like):
    # No django_db mark: any database access would raise.
    response = probe(client, "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    # Any other page on that address is refused or redirected: only the probes skip those checks.
    assert probe(client, "/accounts/login/").status_code in (301, 400)


@pytest.mark.django_db
def test_readyz_is_ok_with_the_database_up_and_no_queue(client, production_like):
    response = probe(client, "/readyz/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "databases": {"default": "ok"}, "queue_lag_seconds": None,
                               "max_queue_lag_seconds": 300.0}


@pytest.mark.django_db
def test_readyz_fails_when_the_oldest_waiting_task_is_older_than_the_bound(client, settings):
    settings.READYZ_MAX_QUEUE_LAG_SECONDS = 60
    queued_task(enqueued_ago=dt.timedelta(seconds=20))
    # A task a worker holds (its lock in the future) is running, not waiting, however old it is.
    queued_task(held_for=dt.timedelta(minutes=9))
    response = probe(client, "/readyz")
    assert response.status_code == 200
    assert 20 <= response.json()["queue_lag_seconds"] < 60
    queued_task(enqueued_ago=dt.timedelta(seconds=90))
    response = probe(client, "/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and response.json()["queue_lag_seconds"] >= 90


@pytest.mark.django_db
def test_readyz_ignores_the_queue_when_the_bound_is_off(client, settings):
    settings.READYZ_MAX_QUEUE_LAG_SECONDS = None
    queued_task(enqueued_ago=dt.timedelta(hours=5))
    response = probe(client, "/readyz")
    assert response.status_code == 200 and response.json()["queue_lag_seconds"] >= 5 * 3600


@pytest.mark.django_db
def test_readyz_fails_without_saying_why_when_the_database_is_down(client, monkeypatch):
    class Unreachable:
        class objects:  # noqa: N801 - stands in for a manager
            @staticmethod
            def using(alias):
                raise OperationalError("could not connect to server db.internal:5432")

        _meta = OrmQ._meta

    monkeypatch.setattr(health, "OrmQ", Unreachable)
    response = probe(client, "/readyz")
    assert response.status_code == 503
    assert response.json()["databases"] == {"default": "unreachable"}
    assert "db.internal" not in response.content.decode()
