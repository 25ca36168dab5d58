"""Upgrading a database from before project membership: everyone who could reach a project then (the
roster, stakeholders, non-staff API token holders) is a member of every existing project; staff and
people with no role are not (staff need no membership)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("labeling", "0003_auditevent_moved_to_core"),
    ("routing", "0009_model_temperature"),
    ("experts", "0004_email_notifications_help"),
    ("authtoken", "0004_alter_tokenproxy_options"),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_everyone_who_could_reach_a_project_becomes_its_member():
    try:
        apps = _migrate(BEFORE)
        User = apps.get_model("auth", "User")
        Project = apps.get_model("labeling", "Project")
        users = {name: User.objects.create(username=name, is_staff=name == "staff")
                 for name in ("crowd", "stakeholder", "pipeline", "staff", "nobody")}
        apps.get_model("experts", "Expert").objects.create(user=users["crowd"], display_name="Crowd", role="crowd")
        users["stakeholder"].groups.add(apps.get_model("auth", "Group").objects.create(name="stakeholders"))
        Token = apps.get_model("authtoken", "Token")
        Token.objects.create(key="p" * 40, user=users["pipeline"])
        Token.objects.create(key="s" * 40, user=users["staff"])
        projects = [Project.objects.create(name=s, slug=s, classes=[{"name": "a"}]) for s in ("pets", "vets")]
        apps = _migrate(_latest())
        memberships = set(apps.get_model("labeling", "ProjectMembership").objects.values_list("user__username",
                                                                                              "project__slug"))
    finally:
        _migrate(_latest())
    assert memberships == {(u, p.slug) for u in ("crowd", "stakeholder", "pipeline") for p in projects}
