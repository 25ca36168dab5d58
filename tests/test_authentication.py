import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.services import project_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def token():
    user = get_user_model().objects.create_user(username="ml-engineer", is_staff=True)
    project_create(name="Pets", slug="pets", classes=["cat", "dog"])
    return Token.objects.create(user=user)


def items(key: str | None):
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/projects/pets/items/")


def test_a_valid_token_authenticates_its_user(token):
    response = items(token.key)
    assert response.status_code == 200, response.content
    assert response.wsgi_request.user == token.user and response.wsgi_request.auth == token


@pytest.mark.parametrize("key", ["not-a-token", "", "a b"])
def test_bad_tokens_answer_401(token, key):
    response = items(key)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Invalid token")
    assert response["WWW-Authenticate"] == "Token"


def test_an_inactive_users_token_is_refused(token):
    get_user_model().objects.filter(pk=token.user_id).update(is_active=False)
    response = items(token.key)
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."


def test_no_header_means_anonymous(token):
    assert items(None).status_code in (401, 403)


def test_the_prepared_lookup_reads_what_drfs_token_authentication_reads(token):
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.test import APIRequestFactory

    from core.authentication import PreparedTokenAuthentication

    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {token.key}")
    ours, theirs = PreparedTokenAuthentication().authenticate(request), TokenAuthentication().authenticate(request)
    assert ours is not None and theirs is not None
    for mine, drf in zip(ours, theirs, strict=True):
        assert type(mine) is type(drf)
        assert {f.attname: getattr(mine, f.attname) for f in mine._meta.concrete_fields} == {
            f.attname: getattr(drf, f.attname) for f in drf._meta.concrete_fields
        }
