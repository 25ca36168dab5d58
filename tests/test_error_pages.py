"""Error pages: the workbench's header and navigation, a sentence, never a URL list or a traceback; under
/api/ the API's error shape, {"errors": [{"field": ..., "message": ...}]} (workbench.errors)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator_client():
    client = Client()
    client.force_login(get_user_model().objects.create_user("crowd1"))
    return client


def assert_styled(response, status: int, title: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert f"<h1>{title}</h1>" in page and 'class="topbar"' in page
    # No list of URL patterns (DEBUG's 404 page: "accounts/login/ [name='login']"), no traceback.
    assert "[name=" not in page and "api/projects" not in page and "Traceback" not in page
    return page


def assert_api_error(response, status: int) -> str:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    [error] = response.json()["errors"]
    assert set(error) == {"field", "message"}
    return error["message"]


def test_an_unknown_page_is_a_styled_404_with_the_navigation(annotator_client):
    page = assert_styled(annotator_client.get("/no-such-page/"), 404, "Page not found")
    assert "Log out" in page and "crowd1" in page


def test_an_unknown_page_for_a_visitor_is_styled_too(client):
    assert_styled(client.get("/no-such-page/"), 404, "Page not found")


def test_a_host_not_in_allowed_hosts_is_a_styled_400(client):
    assert_styled(client.get("/accounts/login/", HTTP_HOST="evil.example.com"), 400, "Bad request")


def test_an_unknown_api_address_is_a_json_404(client):
    assert assert_api_error(client.get("/api/no-such-endpoint/"), 404) == "There is nothing at this address."


def test_a_refused_page_is_a_styled_403_with_its_reason(annotator_client):
    page = assert_styled(annotator_client.get("/import/"), 403, "Access denied")
    assert "Only staff can import items." in page


def test_a_refused_csrf_check_is_a_styled_403():
    page = assert_styled(
        Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x", "password": "y"}),
        403, "Access denied",
    )
    assert "security token" in page


@override_settings(ROOT_URLCONF="tests.error_urls")
def test_a_server_error_is_a_styled_500_and_json_under_the_api():
    client = Client(raise_request_exception=False)
    page = assert_styled(client.get("/boom/"), 500, "Something went wrong")
    assert "a bug" not in page
    assert "logged" in assert_api_error(client.get("/api/boom"), 500)


@override_settings(ROOT_URLCONF="tests.error_urls")
def test_a_permission_error_under_the_api_is_json(client):
    assert assert_api_error(client.get("/api/refused"), 403) == "You do not have access to this page."


def test_csrf_origins_are_the_servers_own_on_any_port_and_no_other(settings, django_user_model):
    """A demo on port 8123 takes its own forms; a page on port 8000 of the same host is not trusted."""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    django_user_model.objects.create_user("ann", password="right-pw-1")
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:8123")
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    form = {"username": "ann", "password": "right-pw-1", "csrfmiddlewaretoken": token}
    assert client.post("/accounts/login/", form, HTTP_ORIGIN="http://127.0.0.1:8000").status_code == 403
    assert client.post("/accounts/login/", form, HTTP_ORIGIN="http://127.0.0.1:8123").status_code == 302
