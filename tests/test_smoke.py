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
    assert "cdn" not in body.lower()
    assert "swagger-ui" in body
