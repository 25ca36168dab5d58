import re

import pytest


@pytest.mark.django_db
def test_home_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_api_docs_served_without_cdn(admin_client):
    response = admin_client.get("/api/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    # Every script and stylesheet comes from this server: no absolute or protocol-relative asset URL.
    assets = re.findall(r'(?:src|href)="([^"]+)"', body)
    assert assets and all(url.startswith("/") and not url.startswith("//") for url in assets), assets
    assert "swagger-ui" in body
