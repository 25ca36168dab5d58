"""API rate limits: per user for everything, a separate and higher one for the work loop (claim, submit,
decline, review), per address for anonymous callers; over a limit a 429 with Retry-After
(workbench.throttling; rates from API_THROTTLE_ANON, API_THROTTLE_USER, API_THROTTLE_WORK)."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from workbench.settings import env_rate
from workbench.throttling import WORK_LOOP_URL_NAMES

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    return set_rates


@pytest.fixture
def api():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("pipeline"))
    return client


def statuses(client: APIClient, method: str, path: str, n: int) -> list[int]:
    return [getattr(client, method)(path).status_code for _ in range(n)]


def test_a_user_over_the_rate_gets_429_with_retry_after(api, rates):
    rates(anon="100/min", user="3/min", work="100/min")
    assert statuses(api, "get", "/api/projects/", 3) == [200, 200, 200]
    response = api.get("/api/projects/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_the_work_loop_has_its_own_rate_beside_the_users(api, rates):
    rates(anon="100/min", user="2/min", work="4/min")
    assert 429 in statuses(api, "get", "/api/projects/", 3)
    # The user's general rate is spent; claims still go through, up to the work rate.
    claims = statuses(api, "post", "/api/projects/no-such-project/next", 5)
    assert claims[:4] == [404] * 4 and claims[4] == 429
    assert api.post("/api/assignments/1/submit", {}, format="json").status_code == 429


def test_anonymous_callers_are_limited_per_address(rates):
    # The API docs page is one of the few endpoints open to anonymous callers (the rest answer 401 first).
    rates(anon="2/min", user="100/min", work="100/min")
    assert statuses(APIClient(), "get", "/api/docs/", 3) == [200, 200, 429]
    assert APIClient(REMOTE_ADDR="10.9.8.7").get("/api/docs/").status_code == 200


def test_off_in_the_environment_lifts_a_limit(api, rates, monkeypatch):
    monkeypatch.setenv("API_THROTTLE_USER", "off")
    rates(anon="1/min", user=env_rate("API_THROTTLE_USER", "1/min"), work="1/min")
    assert set(statuses(api, "get", "/api/projects/", 20)) == {200}


def test_the_default_rates_let_the_work_loop_run_far_faster_than_anything_else():
    rate = {scope: api_settings.DEFAULT_THROTTLE_RATES[scope] for scope in ("anon", "user", "work")}
    per_second = {}
    for scope, value in rate.items():
        count, period = value.split("/")
        per_second[scope] = int(count) / {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
    # bench/claim.py's HTTP loop: 8 annotators near 30 claims and 30 submits a second each.
    assert per_second["work"] >= 60 > per_second["user"] > per_second["anon"]


def test_the_work_loop_names_are_routings_urls():
    # A renamed route would silently fall under the general rate.
    for name in WORK_LOOP_URL_NAMES:
        assert reverse(name, kwargs={"slug": "p"} if name == "assignment-next" else {"assignment_id": 1})
