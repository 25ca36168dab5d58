import pytest
from django.test import Client

from tests.browser.state import PASSWORD


@pytest.fixture
def browser_context_args(browser_context_args):
    # One viewport for every page and screenshot: a common laptop screen.
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}}


@pytest.fixture
def page(page):
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def login_as(page, live_server):
    """Give the browser a session for `user` (no login form: the keyboard test covers that)."""

    def login(user):
        client = Client()
        client.force_login(user)
        page.context.clear_cookies()
        page.context.add_cookies([
            {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url},
        ])
        return page

    return login


def login_with_form(page, live_server, username: str) -> None:
    """Log in through the login form, keyboard only: the username field has focus on load."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
