"""Error pages: the workbench's header and navigation, a sentence, never a URL list or a traceback; under
/api/ the API's error shapes, {"errors": [{"field": ..., "message": ...}]} or {"detail": ...} (workbench.errors)."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from core.access import STAKEHOLDER_GROUP

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator_client():
    client = Client()
    client.force_login(get_user_model().objects.create_user("crowd1"))
    return client


@pytest.fixture
def stakeholder_client():
    user = get_user_model().objects.create_user("sam")
    user.groups.add(Group.objects.get_or_create(name=STAKEHOLDER_GROUP)[0])
    client = Client()
    client.force_login(user)
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
    """A refusal under /api/ (anything but bad content): `{"detail": ...}`, as DRF's own views answer."""
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}
    return response.json()["detail"]


def test_an_unknown_page_is_a_styled_404_with_the_navigation(annotator_client):
    page = assert_styled(annotator_client.get("/no-such-page/"), 404, "Page not found")
    assert "Log out" in page and "crowd1" in page


def test_an_unknown_page_for_a_visitor_is_styled_too(client):
    assert_styled(client.get("/no-such-page/"), 404, "Page not found")


def test_a_host_not_in_allowed_hosts_is_a_styled_400(client):
    assert_styled(client.get("/accounts/login/", HTTP_HOST="evil.example.com"), 400, "Bad request")


def test_an_unknown_api_address_is_a_json_404_as_drf_answers_one(client):
    assert assert_api_error(client.get("/api/no-such-endpoint/"), 404) == "There is nothing at this address."


def test_a_refused_page_is_a_styled_403_with_its_reason(annotator_client):
    page = assert_styled(annotator_client.get("/import/"), 403, "Access denied")
    assert "Only staff may do this." in page


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


def test_a_views_not_found_is_the_styled_404_with_debug_on_too(stakeholder_client, settings):
    """`make run` serves with DEBUG on; a view's own 404 (here the trail of an unknown item) is still the
    workbench's page with its sentence, never Django's page listing every URL pattern."""
    settings.DEBUG = True
    page = assert_styled(stakeholder_client.get("/trail/no-such-project/no-such-item/"), 404, "Page not found")
    assert "No such item." in page and "Log out" in page and "URLconf" not in page


def test_a_views_refusal_is_the_styled_403_with_debug_on_too(annotator_client, settings):
    settings.DEBUG = True
    assert "Only staff may do this." in assert_styled(annotator_client.get("/import/"), 403, "Access denied")


@pytest.mark.parametrize("path", ["/import/", "/queue/", "/trail/no-such-project/no-such-item/"])
def test_expected_refusals_are_logged_as_one_line_without_a_traceback(stakeholder_client, caplog, path):
    with caplog.at_level("INFO"):
        response = stakeholder_client.get(path)
    assert response.status_code in (403, 404)
    records = [r for r in caplog.records if r.name.startswith("django.")]
    assert [(r.name, r.levelname, r.getMessage()) for r in records] == [
        ("django.request", "WARNING", f"{response.reason_phrase}: {path}")
    ]
    assert records[0].exc_info is None


@override_settings(ROOT_URLCONF="tests.error_urls")
def test_a_server_error_is_still_logged_with_its_traceback(caplog):
    with caplog.at_level("ERROR"):
        Client(raise_request_exception=False).get("/boom/")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None and "a bug" in str(record.exc_info[1])


def test_an_htmx_request_gets_the_refusals_sentence_in_a_header_too(annotator_client):
    """htmx does not swap error pages in; static/workbench.js shows this sentence by the form that was sent."""
    response = annotator_client.post("/work/999999/submit/", HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    message = json.loads(response["X-Error-Message"])
    assert message.startswith("Only active roster members") and message in response.content.decode()
    assert "X-Error-Message" not in annotator_client.post("/work/999999/submit/")
