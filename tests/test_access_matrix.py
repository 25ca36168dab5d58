"""Every URL x every role x project membership, against core.access.

The URL resolver is walked: a URL without a rule in core.access.URL_RULES, or without a request here to
try it with, fails. Each request is made as each role (staff, stakeholder, reviewer, expert, crowd,
pipeline token, someone without a role, anonymous), on a project the person is a member of and on one
they are not; what the module says decides the expected answer: allowed -> the URL's own answer (200,
204, 302, or 400/404 for a bad or someone else's request), refused -> 403 (302 to the login page when
not signed in, 401 from the API, 302 to the admin's login for the admin).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from core import access
from dashboards import reports
from experts.models import Role
from labeling import import_jobs, memberships
from labeling.models import Item
from labeling.services import project_create
from tests.routing.assignment_helpers import MIDDLING, ingest_at, person, project, row
from work import claims

pytestmark = pytest.mark.django_db

ADMIN_NAMESPACES = ("admin:", "former_admin:")  # the admin's pages: tried below, changelists and index
ROLES = ("staff", "stakeholder", "reviewer", "expert", "crowd", "pipeline", "none", "anonymous")


def _walk(patterns, namespace: str = "") -> Iterator[tuple[str, object]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            yield (f"{namespace}{entry.name}" if entry.name else f"{namespace}<unnamed>"), entry


def url_names() -> set[str]:
    return {name for name, _ in _walk(get_resolver().url_patterns)}


def test_every_url_has_a_rule_in_the_access_module():
    missing = sorted(name for name in url_names() if access.url_rule(name) is None)
    assert missing == [], f"URLs without a rule in core.access.URL_RULES: {missing}"


def test_a_url_name_without_a_rule_is_reported():
    # The check above can fail: an unknown name has no rule, a namespace's rule covers its names.
    assert access.url_rule("labeling:not-a-page") is None
    assert access.url_rule("admin:labeling_item_changelist") is access.ADMINISTER


@dataclass
class World:
    pets: object
    other: object
    users: dict[str, object]
    tokens: dict[str, str]
    items: dict[str, Item]
    assignment_id: int
    job_id: int


@pytest.fixture
def world(settings, tmp_path, monkeypatch) -> World:
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(import_jobs, "async_task", lambda *args, **kwargs: None)
    User = get_user_model()
    pets = project("pets")
    users = {
        "staff": User.objects.create_user("boss", is_staff=True, is_superuser=True),
        "crowd": person(Role.CROWD, name="crowd"),
        "expert": person(Role.EXPERT, name="expert"),
        "reviewer": person(Role.REVIEWER, name="reviewer"),
        "stakeholder": User.objects.create_user("stakeholder"),
        "pipeline": User.objects.create_user("pipeline"),
        "none": User.objects.create_user("nobody"),
    }
    users["stakeholder"].groups.add(Group.objects.create(name=access.STAKEHOLDER_GROUP))
    memberships.membership_add(project=pets, user=users["stakeholder"])
    memberships.membership_add(project=pets, user=users["pipeline"])
    # Nobody is a member of "other" (staff reach every project regardless).
    other = project_create(name="Other", slug="other", classes=["cat", "dog", "bird"])
    ingest_at(pets, [row("p-1", MIDDLING), row("p-2", MIDDLING)])
    ingest_at(other, [row("o-1", MIDDLING)])
    assignment = claims.assignment_claim_next(user=users["crowd"], project=pets)
    job = import_jobs.import_job_create(
        project=pets,
        uploaded_file=SimpleUploadedFile("x.jsonl", json.dumps(row("j", MIDDLING)).encode()),
        actor=users["staff"],
    )
    return World(
        pets=pets,
        other=other,
        users=users,
        tokens={"pipeline": Token.objects.create(user=users["pipeline"]).key},
        items={"pets": Item.objects.get(external_id="p-1"), "other": Item.objects.get(external_id="o-1")},
        assignment_id=assignment.pk,
        job_id=job.pk,
    )


def client_for(world: World, role: str) -> Client:
    client = Client()
    if role in world.tokens:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {world.tokens[role]}"
    elif role != "anonymous":
        client.force_login(world.users[role])
    return client


def principal_of_role(world: World, role: str) -> access.Principal:
    if role == "anonymous":
        return access.ANONYMOUS
    user = world.users[role]
    auth = Token.objects.get(user=user) if role in world.tokens else None
    return memberships.principal_for(user=user, auth=auth)


@dataclass(frozen=True)
class Try:
    """One request to try a URL with: `ok` the answers when the rule allows it (by role, "*" for the
    rest), `project` the project it concerns (None: none in particular)."""

    method: str
    path: str
    ok: dict[str, set[int]]
    project: str | None = None
    data: dict = field(default_factory=dict)
    api: bool = False


LABELERS_OWN = {"crowd": {200}, "*": {404}}  # the crowd user's assignment: anyone else's answers 404


def tries(world: World) -> dict[str, list[Try]]:
    """Requests for every URL name (admin pages separately), on the member and on the other project."""
    a, job = world.assignment_id, world.job_id
    metric = reports.METRIC_NAMES[0]
    out: dict[str, list[Try]] = {
        "home": [Try("get", reverse("home"), {"stakeholder": {302}, "crowd": {302}, "expert": {302},
                                              "reviewer": {302}, "*": {200}})],
        "login": [Try("get", reverse("login"), {"*": {200}})],
        "logout": [Try("post", reverse("logout"), {"*": {302}})],
        "schema": [Try("get", reverse("schema"), {"*": {200}})],
        "api-docs": [Try("get", reverse("api-docs"), {"*": {200}})],
        "labeling:import": [Try("get", reverse("labeling:import"), {"*": {200}})],
        "labeling:import_job": [Try("get", reverse("labeling:import_job", args=[job]), {"*": {200}})],
        "labeling:import_job_progress": [Try("get", reverse("labeling:import_job_progress", args=[job]), {"*": {200}})],
        "api-project-list": [Try("get", "/api/projects/", {"*": {200}}, api=True)],
        "api-project-member": [Try("delete", "/api/projects/pets/members/nobody-here/", {"*": {404}}, api=True)],
        "audit-export": [Try("get", "/api/audit/export?since=2020-01-01", {"*": {200}}, api=True)],
        "work:queue": [Try("get", reverse("work:queue"), {"*": {200}})],
        "work:queue_start": [Try("post", reverse("work:queue_start"), {"*": {302}})],
        "work:work": [Try("get", reverse("work:work", args=[a]), LABELERS_OWN)],
        "work:submit": [Try("post", reverse("work:submit", args=[a]), {"crowd": {400}, "*": {404}})],
        "work:decline": [Try("post", reverse("work:decline", args=[a]), {"crowd": {400}, "*": {404}})],
        "work:review": [Try("post", reverse("work:review", args=[a]), {"crowd": {400, 409}, "*": {404}})],
        # Well-formed bodies the owner's assignment still refuses: the answer is about the assignment.
        "assignment-submit": [
            Try("post", f"/api/assignments/{a}/submit", {"crowd": {400}, "*": {404}}, data={"label": "no-class"},
                api=True)
        ],
        "assignment-decline": [
            Try("post", f"/api/assignments/{a}/decline", {"crowd": {400}, "*": {404}}, data={"reason": ""}, api=True)
        ],
        "assignment-review": [
            Try("post", f"/api/assignments/{a}/review", {"crowd": {400, 409}, "*": {404}}, data={"verdict": "agree"},
                api=True)
        ],
        "dashboards:index": [Try("get", reverse("dashboards:index"), {"*": {200}})],
        "items:search": [Try("get", reverse("items:search"), {"*": {200}})],
    }
    for slug in ("pets", "other"):
        item = world.items[slug]
        per_project = {
            "labeling:project_import": Try("get", reverse("labeling:project_import", args=[slug]), {"*": {200}}),
            "api-project-detail": Try("get", f"/api/projects/{slug}/", {"*": {200}}, api=True),
            "api-project-members": Try("get", f"/api/projects/{slug}/members/", {"*": {200}}, api=True),
            "api-item-list": Try("get", f"/api/projects/{slug}/items/", {"*": {200}}, api=True),
            "api-item-detail": Try("get", f"/api/projects/{slug}/items/{item.external_id}/", {"*": {200}}, api=True),
            "api-export": Try("get", f"/api/projects/{slug}/export", {"*": {200}}, api=True),
            "routing:trail": Try("get", reverse("routing:trail", args=[slug, item.external_id]), {"*": {200}}),
            # The first address by internal id: a redirect to the one above.
            "routing:item_trail": Try("get", reverse("routing:item_trail", args=[item.pk]), {"*": {302}}),
            "item-decisions": Try("get", f"/api/projects/{slug}/items/{item.external_id}/decisions/", {"*": {200}},
                                  api=True),
            "next-to-label": Try("get", f"/api/projects/{slug}/next-to-label", {"*": {200}}, api=True),
            "work:project_queue": Try("get", reverse("work:project_queue", args=[slug]), {"*": {200}}),
            "assignment-next": Try("post", f"/api/projects/{slug}/next", {"*": {200, 204}}, api=True),
            "dashboards:project": Try("get", reverse("dashboards:project", args=[slug]), {"*": {200}}),
            "dashboard-metric": Try("get", f"/api/metrics/{metric}/?project={slug}", {"*": {200}}, api=True),
        }
        for name, attempt in per_project.items():
            out.setdefault(name, []).append(Try(**{**attempt.__dict__, "project": slug}))
    return out


def refused(attempt: Try, role: str, *, admin: bool = False) -> set[int]:
    if admin:
        return {302}
    if role == "anonymous":
        return {401, 403} if attempt.api else {302}
    return {403}


def test_every_url_answers_every_role_as_the_access_module_says(world):
    planned = tries(world)
    untried = sorted(n for n in url_names() if not n.startswith(ADMIN_NAMESPACES) and n not in planned)
    assert untried == [], f"URLs with a rule but no request in this test: {untried}"
    projects = {"pets": world.pets.pk, "other": world.other.pk}
    wrong = []
    for role in ROLES:
        for name, attempts in planned.items():
            rule = access.url_rule(name)
            for attempt in attempts:
                # A token signs in API requests only: a pipeline's token on a page is nobody's.
                seen_as = "anonymous" if role in world.tokens and not attempt.api else role
                principal = principal_of_role(world, seen_as)
                project_id = projects[attempt.project] if attempt.project else None
                allowed = rule.allows(principal, project_id)
                expected = attempt.ok.get(role, attempt.ok.get("*")) if allowed else refused(attempt, seen_as)
                client = client_for(world, role)
                if attempt.api and attempt.method == "post":
                    # The API reads JSON bodies only.
                    response = client.post(attempt.path, json.dumps(attempt.data), content_type="application/json")
                else:
                    response = getattr(client, attempt.method)(attempt.path, attempt.data)
                if response.status_code not in expected:
                    wrong.append((role, name, attempt.path, response.status_code, sorted(expected)))
    assert wrong == [], wrong


def admin_pages() -> list[str]:
    names = [
        n for n in url_names() if n == "admin:index" or (n.startswith(ADMIN_NAMESPACES) and n.endswith("_changelist"))
    ]
    assert len(names) > 10
    return sorted(names)


@pytest.mark.parametrize("role", ROLES)
def test_admin_pages_answer_as_the_access_module_says(world, role):
    principal = principal_of_role(world, role)
    client = client_for(world, role)
    wrong = []
    for name in admin_pages():
        allowed = access.url_rule(name).allows(principal)
        status = client.get(reverse(name)).status_code
        if status not in ({200} if allowed else refused(Try("get", "", {}), role, admin=True)):
            wrong.append((name, status))
    assert wrong == []


def test_the_matrix_covers_a_member_and_a_non_member_answer(world):
    # The same stakeholder reads the member project's trail and is refused the other's.
    client = client_for(world, "stakeholder")
    pets, other = world.items["pets"], world.items["other"]
    assert client.get(reverse("routing:trail", args=["pets", pets.external_id])).status_code == 200
    refused_page = client.get(reverse("routing:trail", args=["other", other.external_id]))
    assert refused_page.status_code == 403 and "not a member" in refused_page.content.decode()


ROLE_CHECKS: dict[str, Callable[[access.Principal], bool]] = {
    "staff": lambda p: p.role == access.Role.STAFF,
    "crowd": lambda p: p.role == access.Role.CROWD and p.labels,
    "pipeline": lambda p: p.role == access.Role.PIPELINE,
    "none": lambda p: p.role == access.Role.NONE,
}


@pytest.mark.parametrize("role", sorted(ROLE_CHECKS))
def test_principals_are_read_as_their_roles(world, role):
    assert ROLE_CHECKS[role](principal_of_role(world, role))
