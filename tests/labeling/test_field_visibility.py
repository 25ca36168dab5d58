"""Project.field_visibility: who sees each item field, edited in the project admin (one row per field, a
checkbox per role), checked by the services for the admin and the API alike, migrated from hidden_fields."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.access import Principal, Role, fields_hidden_from_reader, fields_hidden_from_work
from core.models import AuditEvent
from labeling import services
from labeling.models import Project
from tests.labeling.conftest import row, token_client

pytestmark = pytest.mark.django_db

VISIBILITY = {"metadata.scanner_tag": ["expert", "reviewer"], "data.notes": ["reviewer"], "data.hint": []}


@pytest.mark.parametrize(
    "work_kind, hidden",
    [
        ("crowd", ["metadata.scanner_tag", "data.notes", "data.hint"]),
        ("expert", ["data.notes", "data.hint"]),
        ("review", ["data.hint"]),
        ("gold_check", ["metadata.scanner_tag", "data.notes", "data.hint"]),  # unknown kinds see no restricted field
    ],
)
def test_work_sees_the_fields_its_role_is_given(work_kind, hidden):
    assert fields_hidden_from_work(VISIBILITY, work_kind=work_kind) == hidden
    assert fields_hidden_from_work({}, work_kind=work_kind) == []


def test_readers_outside_labeling_work_see_restricted_fields_only_as_staff():
    everyone = {**VISIBILITY, "data.text": ["crowd", "expert", "reviewer"]}
    assert fields_hidden_from_reader(Principal(role=Role.STAFF), everyone) == []
    for role in (Role.STAKEHOLDER, Role.PIPELINE, Role.EXPERT):
        assert fields_hidden_from_reader(Principal(role=role), everyone) == list(VISIBILITY)


def test_the_service_normalises_and_names_what_is_wrong(project):
    updated = services.project_update(
        project=project, field_visibility={" data.notes ": ["reviewer", "crowd", "reviewer"], "data.text": [
            "reviewer", "expert", "crowd"]},
    )
    # Roles once each, in a fixed order; a field every role sees is the same as not listed.
    assert updated.field_visibility == {"data.notes": ["crowd", "reviewer"]}
    with pytest.raises(ValidationError) as exc:
        services.project_update(project=project, field_visibility={"notes": ["crowd"], "data.x": ["admin"]})
    messages = exc.value.message_dict["field_visibility"]
    assert any("'notes'" in m and "data.<key>" in m for m in messages)
    assert any("'data.x'" in m and "'admin' is not a role" in m for m in messages)
    project.refresh_from_db()
    assert project.field_visibility == {"data.notes": ["crowd", "reviewer"]}


def test_the_api_creates_with_field_visibility_and_refuses_a_bad_role_by_name(staff):
    client = token_client(staff)
    body = {"name": "Digits", "slug": "digits", "classes": ["0", "1"],
            "field_visibility": {"metadata.scanner_tag": ["expert", "reviewer"]}}
    response = client.post("/api/projects/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["field_visibility"] == {"metadata.scanner_tag": ["expert", "reviewer"]}
    bad = {**body, "slug": "digits2", "field_visibility": {"metadata.scanner_tag": ["experts"]}}
    response = client.post("/api/projects/", bad, format="json")
    assert response.status_code == 400 and "'experts' is not a role" in response.content.decode()
    assert not Project.objects.filter(slug="digits2").exists()


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password=None))
    return client


def project_form(project, **overrides):
    data = {
        "name": project.name, "instructions": "", "data_type": "text",
        "classes": '["cat", "dog", "bird"]', "decision_factors": "[]", "review_sample_rate": "0",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def rows(*entries):
    """The visibility table as the form posts it: (path, roles ticked) per row."""
    data = {"field_visibility-rows": str(len(entries))}
    for i, (path, roles) in enumerate(entries):
        data[f"field_visibility-{i}-path"] = path
        data[f"field_visibility-{i}-roles"] = list(roles)
    return data


def test_the_project_admin_round_trips_field_visibility(admin_client, project, staff):
    services.items_ingest(project=project, rows=[row("a", metadata={"scanner_tag": "7", "batch": "b1"})])
    url = f"/admin/labeling/project/{project.pk}/change/"
    page = admin_client.get(url).content.decode()
    # One row per field the items have, every role ticked while nothing is restricted.
    for path in ("data.text", "metadata.batch", "metadata.scanner_tag"):
        assert f'value="{path}"' in page
    assert page.count('value="crowd" checked') == 3 + 2  # three fields and the two empty rows

    posted = rows(("data.text", "crowd expert reviewer".split()), ("metadata.batch", ["crowd", "expert", "reviewer"]),
                  ("metadata.scanner_tag", ["expert", "reviewer"]), ("metadata.patient.name", ["reviewer"]), ("", []))
    response = admin_client.post(url, project_form(project, **posted))
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.field_visibility == {"metadata.scanner_tag": ["expert", "reviewer"],
                                        "metadata.patient.name": ["reviewer"]}
    event = AuditEvent.objects.filter(action="project.update").latest("id")
    assert event.data["before"]["field_visibility"] == {} and event.data["after"]["field_visibility"] == (
        project.field_visibility)

    # Shown again as stored: the crowd's box unticked for the scanner tag, the nested field listed.
    page = admin_client.get(url).content.decode()
    assert 'value="metadata.patient.name"' in page
    scanner_row = page.split('value="metadata.scanner_tag"')[1].split("</tr>")[0]
    assert 'value="crowd" checked' not in scanner_row and 'value="expert" checked' in scanner_row

    # Saving the table unchanged records no change of field_visibility.
    unchanged = rows(("metadata.scanner_tag", ["expert", "reviewer"]), ("metadata.patient.name", ["reviewer"]))
    assert admin_client.post(url, project_form(project, **unchanged)).status_code == 302
    events = AuditEvent.objects.filter(action="project.update").order_by("id")
    assert not any("field_visibility" in e.data["after"] for e in events[1:])


def test_the_project_admin_names_a_bad_field_path(admin_client, project):
    url = f"/admin/labeling/project/{project.pk}/change/"
    response = admin_client.post(url, project_form(project, **rows(("scanner_tag", ["expert"]))))
    assert response.status_code == 200
    assert "scanner_tag" in str(response.context["adminform"].form.errors["field_visibility"])
    project.refresh_from_db()
    assert project.field_visibility == {}


BEFORE = [("labeling", "0005_protect_labeled_items")]
AFTER = [("labeling", "0006_project_field_visibility")]


def _migrate(targets):
    MigrationExecutor(connection).migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_hidden_field_hidden_from_the_crowd_alone():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        Project_ = _migrate(BEFORE).get_model("labeling", "Project")
        Project_.objects.create(name="A", slug="a", classes=[], hidden_fields=["metadata.scanner_tag", "data.ssn"])
        Project_.objects.create(name="B", slug="b", classes=[], hidden_fields=[])
        migrated = _migrate(AFTER).get_model("labeling", "Project")
        after = dict(migrated.objects.values_list("slug", "field_visibility"))
        # And back: the fields the crowd did not see are hidden_fields again.
        reverted = dict(_migrate(BEFORE).get_model("labeling", "Project").objects.values_list("slug", "hidden_fields"))
    finally:
        _migrate(latest)
        Project.objects.all().delete()
    assert after == {"a": {"metadata.scanner_tag": ["expert", "reviewer"], "data.ssn": ["expert", "reviewer"]},
                     "b": {}}
    # PostgreSQL's jsonb keeps object keys in its own order, so the list comes back in that order.
    assert {slug: sorted(paths) for slug, paths in reverted.items()} == {"a": ["data.ssn", "metadata.scanner_tag"],
                                                                        "b": []}


def test_a_field_no_item_has_stays_editable_so_a_typo_can_be_dropped(admin_client, project):
    url = f"/admin/labeling/project/{project.pk}/change/"
    response = admin_client.post(url, project_form(project, **rows(("metadat.typo", ["expert"]))))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'type="text" name="field_visibility-0-path" value="metadat.typo"' in page
    fixed = rows(("metadata.typo", ["expert"]))
    assert admin_client.post(url, project_form(project, **fixed)).status_code == 302
    project.refresh_from_db()
    assert project.field_visibility == {"metadata.typo": ["expert"]}
    assert admin_client.post(url, project_form(project, **rows(("", ["expert"])))).status_code == 302
    project.refresh_from_db()
    assert project.field_visibility == {}
