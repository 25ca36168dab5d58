"""Every page carries the workbench's strict Content-Security-Policy: the workbench pages, the login page
and the admin; only the OpenAPI docs page (Swagger UI starts with an inline script) does without."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.http import content_security_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_():
    client = Client()
    client.force_login(get_user_model().objects.create_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_login_pages_carry_the_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == content_security_policy()


@pytest.mark.parametrize("path", ["/admin/", "/admin/labeling/item/", "/admin/routing/escalationpolicy/", "/"])
def test_admin_and_workbench_pages_carry_the_policy(admin_client_, path):
    response = admin_client_.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == content_security_policy()


def test_the_policy_lets_nothing_inline_run():
    directives = dict(d.split(" ", 1) for d in content_security_policy().split("; "))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and "unsafe" not in content_security_policy()


def test_a_refused_csrf_check_carries_it_too():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert response["Content-Security-Policy"] == content_security_policy()


def test_the_api_docs_page_goes_without(admin_client_):
    response = admin_client_.get("/api/docs/")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response


def test_debug_error_pages_go_without_and_production_ones_keep_it(client, settings):
    settings.DEBUG = True
    assert "Content-Security-Policy" not in client.get("/no-such-page/")
    settings.DEBUG = False
    assert client.get("/no-such-page/")["Content-Security-Policy"] == content_security_policy()


def directives() -> dict[str, str]:
    return dict(d.split(" ", 1) for d in content_security_policy().split("; "))


def test_images_come_from_the_site_inline_data_or_listed_https_hosts_only(settings):
    settings.ITEM_IMAGE_HOSTS = []
    assert directives()["img-src"] == "'self' data:"
    settings.ITEM_IMAGE_HOSTS = ["images.example.org", "https://*.cdn.example.com"]
    assert directives()["img-src"] == "'self' data: https://images.example.org https://*.cdn.example.com"
    assert "http:" not in directives()["img-src"].split()


def test_the_header_follows_the_listed_hosts(client, settings):
    settings.ITEM_IMAGE_HOSTS = ["images.example.org"]
    header = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "img-src 'self' data: https://images.example.org;" in header
