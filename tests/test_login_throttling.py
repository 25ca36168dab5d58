"""Login throttling (django-axes) on both login pages: LOGIN_FAILURE_LIMIT wrong passwords lock the username
and the address for LOGIN_LOCKOUT_MINUTES, with a page that says so; the right password does not get in
meanwhile."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

PAGES = ["/accounts/login/", "/admin/login/"]
PASSWORD = "right-password-1"


@pytest.fixture
def ann():
    # Staff, so the admin's login page lets the right password in too.
    return get_user_model().objects.create_user("ann", password=PASSWORD, is_staff=True)


def attempt(client: Client, page: str, username: str, password: str):
    return client.post(page, {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_defaults_are_five_failures_and_fifteen_minutes(settings):
    assert settings.AXES_FAILURE_LIMIT == 5 and settings.AXES_COOLOFF_TIME == timedelta(minutes=15)


@pytest.mark.parametrize("page", PAGES)
def test_after_five_wrong_passwords_the_right_one_is_refused_with_the_lockout_page(client, ann, page):
    for _ in range(4):
        assert attempt(client, page, "ann", "wrong").status_code == 200
    response = attempt(client, page, "ann", "wrong")
    assert response.status_code == 429
    response = attempt(client, page, "ann", PASSWORD)
    assert response.status_code == 429 and not logged_in(client)
    page_text = response.content.decode()
    assert "Login locked" in page_text and "after 5 wrong passwords" in page_text and "0:15:00" in page_text


def test_the_lock_holds_on_the_other_login_page_and_from_another_address(ann):
    for _ in range(5):
        attempt(Client(), "/accounts/login/", "ann", "wrong")
    other = Client(REMOTE_ADDR="10.1.2.3")
    assert attempt(other, "/admin/login/", "ann", PASSWORD).status_code == 429 and not logged_in(other)


def test_one_address_guessing_many_usernames_is_locked_too(client, ann):
    for i in range(5):
        attempt(client, "/accounts/login/", f"guess{i}", "password123")
    assert attempt(client, "/accounts/login/", "ann", PASSWORD).status_code == 429
    assert not logged_in(client)


def test_the_lock_lifts_after_the_cooloff(client, ann, settings):
    for _ in range(5):
        attempt(client, "/accounts/login/", "ann", "wrong")
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert attempt(client, "/accounts/login/", "ann", PASSWORD).status_code == 302 and logged_in(client)


def test_a_success_clears_the_count(client, ann):
    for _ in range(4):
        attempt(client, "/accounts/login/", "ann", "wrong")
    assert attempt(client, "/accounts/login/", "ann", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(4):
        attempt(client, "/accounts/login/", "ann", "wrong")
    assert attempt(client, "/accounts/login/", "ann", PASSWORD).status_code == 302 and logged_in(client)
