"""The read replica: which reads go there (dashboards, exports) and which never do (claims, submits, writes).

The router's decisions are tested on any database. On PostgreSQL a second database on the same server
stands in for the replica, holding different rows than the primary, so a read that lands on the wrong one
shows in what the page or export returns. (Django's TEST MIRROR would point both aliases at one database
and hide exactly that.) A replica receives its schema by replication; here it is migrated with the router
switched off, since the router allows migrations on the primary only.
"""
import json
import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from core import bulk
from core.access import STAKEHOLDER_GROUP
from core.models import AuditEvent
from core.replicas import REPLICA, ReplicaRouter, read_alias, replica_alias, replica_reads
from experts.models import Role
from labeling.memberships import membership_add, membership_remove
from labeling.models import Item, Project
from routing.models import Assignment, AssignmentStatus
from tests.routing.assignment_helpers import MIDDLING, ingest_at, person, project, row

ROUTER = "core.replicas.ReplicaRouter"


@pytest.fixture
def replica_configured(monkeypatch):
    """The replica's alias in the connection settings, as DATABASE_REPLICA_URL puts it; never connected."""
    monkeypatch.setitem(connections.settings, REPLICA, {**connections[DEFAULT_DB_ALIAS].settings_dict})


@pytest.fixture
def no_replica(monkeypatch):
    monkeypatch.delitem(connections.settings, REPLICA, raising=False)


class TestRouterDecisions:
    def test_without_a_replica_everything_stays_on_the_primary(self, no_replica):
        router = ReplicaRouter()
        with replica_reads():
            assert router.db_for_read(Item) is None
            assert (read_alias(), replica_alias()) == (DEFAULT_DB_ALIAS, DEFAULT_DB_ALIAS)
        assert router.db_for_read(Item) is None and read_alias() == DEFAULT_DB_ALIAS

    def test_reads_go_to_the_replica_only_inside_a_section(self, replica_configured):
        router = ReplicaRouter()
        assert router.db_for_read(Item) is None
        assert (read_alias(), replica_alias()) == (DEFAULT_DB_ALIAS, REPLICA)
        with replica_reads():
            assert router.db_for_read(Item) == REPLICA and read_alias() == REPLICA
            with replica_reads():
                assert read_alias() == REPLICA
            assert read_alias() == REPLICA
        assert router.db_for_read(Item) is None and read_alias() == DEFAULT_DB_ALIAS

    def test_a_section_ends_when_its_block_raises(self, replica_configured):
        with pytest.raises(RuntimeError), replica_reads():
            raise RuntimeError
        assert read_alias() == DEFAULT_DB_ALIAS

    def test_as_a_decorator(self, replica_configured):
        @replica_reads()
        def page():
            return read_alias()

        assert page() == REPLICA and read_alias() == DEFAULT_DB_ALIAS

    def test_writes_and_migrations_go_to_the_primary_only(self, replica_configured):
        router = ReplicaRouter()
        from_replica = Item(pk=1)
        from_replica._state.db = REPLICA
        with replica_reads():
            assert router.db_for_write(Item) == DEFAULT_DB_ALIAS
            assert router.db_for_write(Item, instance=from_replica) == DEFAULT_DB_ALIAS
        assert router.allow_migrate(DEFAULT_DB_ALIAS, "labeling") is True
        assert router.allow_migrate(REPLICA, "labeling") is False

    def test_objects_from_either_database_may_refer_to_each_other(self, replica_configured):
        a, b, c = Item(), Project(), Project()
        a._state.db, b._state.db, c._state.db = DEFAULT_DB_ALIAS, REPLICA, "elsewhere"
        assert ReplicaRouter().allow_relation(a, b) is True
        assert ReplicaRouter().allow_relation(a, c) is None


def settings_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = ("import json; from workbench import settings as s; "
            "print(json.dumps([sorted(s.DATABASES), getattr(s, 'DATABASE_ROUTERS', []), "
            "s.DATABASES.get('replica', {}).get('NAME')]))")
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_REPLICA_URL")}
    return subprocess.run([sys.executable, "-c", code], env={**environment, "SECRET_KEY": "x" * 50, **env},
                          capture_output=True, text=True, timeout=120)


class TestSettings:
    def test_the_replica_url_adds_the_alias_and_the_router(self):
        done = settings_with({"DATABASE_URL": "postgres://u@primary/wb", "DATABASE_REPLICA_URL": "postgres://u@standby/wb"})
        assert json.loads(done.stdout) == [["default", "replica"], [ROUTER], "wb"]

    def test_without_it_there_is_no_replica_and_no_router(self):
        done = settings_with({"DATABASE_URL": "postgres://u@primary/wb"})
        assert json.loads(done.stdout) == [["default"], [], None]

    def test_a_replica_needs_postgresql(self):
        done = settings_with({"DATABASE_REPLICA_URL": "sqlite:////tmp/replica.sqlite3"})
        assert done.returncode != 0 and "DATABASE_REPLICA_URL needs PostgreSQL" in done.stderr


# ---- PostgreSQL: a second database stands in for the replica ----

@pytest.fixture(scope="module")
def replica_database(django_db_setup, django_db_blocker):
    if connection.vendor != "postgresql":
        pytest.skip("the replica is PostgreSQL's (DATABASE_REPLICA_URL)")
    import psycopg

    primary = connections[DEFAULT_DB_ALIAS].settings_dict
    name = f"{primary['NAME']}_replica"
    server = {"host": primary["HOST"] or None, "port": primary["PORT"] or None, "user": primary["USER"] or None,
              "password": primary["PASSWORD"] or None}
    with django_db_blocker.unblock(), psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        connections.settings[REPLICA] = {**primary, "NAME": name, "TEST": {**primary["TEST"], "NAME": name}}
        try:
            with override_settings(DATABASE_ROUTERS=[]):
                call_command("migrate", database=REPLICA, verbosity=0)
            with override_settings(DATABASE_ROUTERS=[ROUTER]):
                yield name
        finally:
            connections[REPLICA].close()
            del connections[REPLICA]
            del connections.settings[REPLICA]
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def both(test):
    """A PostgreSQL test whose transaction spans the primary and the stand-in replica."""
    return pytest.mark.postgres(pytest.mark.django_db(databases=[DEFAULT_DB_ALIAS, REPLICA])(test))


def on_replica(primary_project: Project, *external_ids: str) -> None:
    """The same project (same id) on the replica, holding other items than the primary."""
    Project.objects.using(REPLICA).create(pk=primary_project.pk, name=primary_project.name, slug=primary_project.slug,
                                          classes=primary_project.classes)
    for external_id in external_ids:
        Item.objects.using(REPLICA).create(project_id=primary_project.pk, external_id=external_id, data={"text": "r"})


@pytest.fixture
def staff(replica_database):
    return get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)


def staff_api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def streamed_lines(response) -> list[dict]:
    assert response.status_code == 200, response
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


@both
def test_the_item_export_reads_the_replica(staff):
    proj = project()
    ingest_at(proj, [row("on-primary", MIDDLING)], now=timezone.now())
    on_replica(proj, "on-replica-1", "on-replica-2")
    for fmt in ("jsonl", "label-studio"):
        response = staff_api(staff).get(f"/api/projects/{proj.slug}/export?format={fmt}")
        text = b"".join(response.streaming_content).decode()
        assert "on-replica-1" in text and "on-replica-2" in text and "on-primary" not in text


@both
def test_the_audit_and_decision_exports_read_the_replica(staff):
    proj = project()
    ingest_at(proj, [row("a", MIDDLING)], now=timezone.now())  # routing decisions on the primary
    AuditEvent.objects.using(REPLICA).create(action="only.on.replica", object_type="x", object_id="1", data={})
    events = streamed_lines(staff_api(staff).get("/api/audit/export?since="))
    assert [e["action"] for e in events] == ["only.on.replica"]
    assert streamed_lines(staff_api(staff).get("/api/audit/export?since=&kind=decisions")) == []


@both
def test_dashboard_pages_and_metrics_read_the_replica(client, staff):
    proj = project()
    on_replica(proj)
    Project.objects.using(REPLICA).create(name="Only on the replica", slug="replica-only", classes=proj.classes)
    client.force_login(staff)
    with CaptureQueriesContext(connections[REPLICA]) as replica_queries:
        page = client.get("/dashboards/replica-only/")
        metric = staff_api(staff).get("/api/metrics/projects/?project=replica-only")
        listing = client.get("/dashboards/")
        items = client.get("/items/?q=x")
    assert page.status_code == 200 and "Only on the replica" in page.content.decode()
    assert metric.status_code == 200 and metric.json()["filters"]["project"] == "replica-only"
    assert listing.status_code == 200 and "Only on the replica" in listing.content.decode()
    assert items.status_code == 200
    assert any("dashboards_" in q["sql"] for q in replica_queries.captured_queries)
    # Not on the primary: the same slug is unknown there.
    assert not Project.objects.filter(slug="replica-only").exists()


@both
def test_who_may_see_a_dashboard_is_decided_on_the_primary(replica_database, client):
    proj = project()
    on_replica(proj)  # the replica has the project, but not the viewer, their group or their membership
    viewer = get_user_model().objects.create_user("viewer")
    viewer.groups.add(Group.objects.get_or_create(name=STAKEHOLDER_GROUP)[0])
    membership_add(project=proj, user=viewer)
    client.force_login(viewer)
    assert client.get(f"/dashboards/{proj.slug}/").status_code == 200
    assert client.get("/dashboards/").status_code == 200
    assert client.get("/items/").status_code == 200
    membership_remove(project=proj, user=viewer)
    assert client.get(f"/dashboards/{proj.slug}/").status_code == 403


@both
def test_claims_submits_and_routing_stay_on_the_primary(staff):
    crowd = person(Role.CROWD)
    proj = project()
    on_replica(proj)  # the replica knows the project but none of its items: a read there would find no work
    with CaptureQueriesContext(connections[REPLICA]) as replica_queries:
        ingest_at(proj, [row("a", MIDDLING)], now=timezone.now())
        claimed = staff_api(crowd).post(f"/api/projects/{proj.slug}/next")
        assert claimed.status_code == 200, claimed.json()
        submitted = staff_api(crowd).post(f"/api/assignments/{claimed.json()['assignment']}/submit",
                                          {"label": "cat"}, format="json")
        assert submitted.status_code == 200, submitted.json()
    assert replica_queries.captured_queries == []
    assert Assignment.objects.get(pk=claimed.json()["assignment"]).status == AssignmentStatus.COMPLETED
    assert not Assignment.objects.using(REPLICA).exists()


@both
def test_raw_sql_helpers_take_the_alias_of_the_section(staff):
    proj = project()
    ingest_at(proj, [row("on-primary", MIDDLING)], now=timezone.now())
    on_replica(proj, "on-replica")

    def external_ids():
        return [external_id for (external_id,) in
                bulk.select_in(Item, ["external_id"], key="project", values=[proj.pk])]

    assert external_ids() == ["on-primary"]
    with replica_reads():
        assert external_ids() == ["on-replica"]
        with bulk.prepared_cursor() as cursor:
            cursor.execute("SELECT external_id FROM labeling_item WHERE project_id = %s", [proj.pk])
            assert cursor.fetchall() == [("on-replica",)]
        with bulk.prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
            cursor.execute("SELECT external_id FROM labeling_item WHERE project_id = %s", [proj.pk])
            assert cursor.fetchall() == [("on-primary",)]
        item = Item.objects.get(external_id="on-replica")
        assert item._state.db == REPLICA
