"""API clients for the read endpoints' permission tests: staff, a pipeline's token, an annotator's token."""

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from experts.models import Role
from tests.memberships import members_everywhere
from tests.routing.assignment_helpers import person


def staff_client(username: str = "staff") -> APIClient:
    client = APIClient()
    client.force_login(get_user_model().objects.create_user(username=username, is_staff=True))
    return client


def token_client(username: str = "pipeline", *, roster_role: str | None = None) -> APIClient:
    """A client authenticating with an API token; with `roster_role`, its user is on the labeling roster."""
    user = person(roster_role, name=username) if roster_role else get_user_model().objects.create_user(username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    members_everywhere()
    return client


def session_client(username: str = "someone") -> APIClient:
    """Signed in through the browser session: neither staff nor a token client."""
    client = APIClient()
    client.force_login(get_user_model().objects.create_user(username=username))
    return client


ROSTER_ROLES = (Role.CROWD, Role.EXPERT, Role.REVIEWER)
