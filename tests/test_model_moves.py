"""A database migrated by the code before the split (routing/ holding calibration runs, labeling/ the audit
log, the jobs under routing.tasks) keeps every row and foreign key when it migrates forward: the models
moved to core/ and pilot/ by state-only migrations over the same tables."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# Every app's latest migration before the split; apps that did not exist yet have none.
BEFORE = [
    ("core", None),
    ("pilot", None),
    ("work", None),
    ("routing", "0007_class_prior_recheck"),
    ("labeling", "0002_drop_redundant_fk_indexes"),
]
LIBRARIES = [
    ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0012_alter_user_first_name_max_length"),
]
WHEN = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    # The models as of those migrations, with Django's and django_q's as they are.
    nodes = [t for t in targets if t[1] is not None] + LIBRARIES
    return MigrationExecutor(connection).loader.project_state(nodes).apps


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _seed(apps):
    """Rows as the code before the split wrote them, through the historical models."""
    User = apps.get_model("auth", "User")
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    Project = apps.get_model("labeling", "Project")
    Item = apps.get_model("labeling", "Item")
    Schedule = apps.get_model("django_q", "Schedule")
    user = User.objects.create(username="ops", is_staff=True)
    project = Project.objects.create(name="Pets", slug="pets", classes=[{"name": "cat"}, {"name": "dog"}])
    item = Item.objects.create(project=project, external_id="a", data={"text": "meow"})
    policy = apps.get_model("routing", "EscalationPolicy").objects.create(project=project)
    version = apps.get_model("routing", "PolicyVersion").objects.create(
        policy=policy, number=1, config={}, author=user, published_at=WHEN
    )
    policy.live_version = version
    policy.save()
    decision = apps.get_model("routing", "RoutingDecision").objects.create(
        item=item, policy_version=version, stage="ingest", inputs={}, inputs_digest="d" * 64, outcome="crowd"
    )
    slot = apps.get_model("routing", "Assignment").objects.create(
        item=item, project=project, kind="crowd", decision=decision, due_at=WHEN
    )
    run = apps.get_model("routing", "CalibrationRun").objects.create(
        project=project, budget=2.0, last_n=50, draft=version, created_by=user, status="succeeded", progress=100
    )
    event = apps.get_model("labeling", "AuditEvent").objects.create(
        actor=user, action="project.create", object_type="project", object_id=str(project.pk), data={"n": 1}
    )
    audit_type, _ = ContentType.objects.get_or_create(app_label="labeling", model="auditevent")
    view_log, _ = Permission.objects.get_or_create(
        content_type=audit_type, codename="view_auditevent", defaults={"name": "Can view audit event"}
    )
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(view_log)
    for func in ("routing.tasks.assignments_expire", "routing.tasks.calibration_recommendations_enqueue"):
        Schedule.objects.create(name=func.rsplit(".", 1)[1], func=func, schedule_type="I", minutes=1)
    return {"user": user.pk, "project": project.pk, "item": item.pk, "version": version.pk,
            "decision": decision.pk, "slot": slot.pk, "run": run.pk, "event": event.pk, "group": auditors.pk}


@pytest.mark.django_db(transaction=True)
def test_rows_and_foreign_keys_survive_the_move():
    try:
        ids = _seed(_migrate(BEFORE))
        apps = _migrate(_latest())
    finally:
        _migrate(_latest())

    event = apps.get_model("core", "AuditEvent").objects.get(pk=ids["event"])
    assert (event.actor_id, event.action, event.object_id, event.data) == (
        ids["user"], "project.create", str(ids["project"]), {"n": 1}
    )
    run = apps.get_model("pilot", "CalibrationRun").objects.get(pk=ids["run"])
    assert (run.project_id, run.draft_id, run.created_by_id, run.budget, run.status) == (
        ids["project"], ids["version"], ids["user"], 2.0, "succeeded"
    )
    assert run.draft.policy.project.slug == "pets"
    slot = apps.get_model("routing", "Assignment").objects.get(pk=ids["slot"])
    assert (slot.item_id, slot.decision_id, slot.decision.policy_version_id) == (
        ids["item"], ids["decision"], ids["version"]
    )
    # The log's content type moved with it, and the permission granted on it still is.
    group = apps.get_model("auth", "Group").objects.get(pk=ids["group"])
    assert {(p.content_type.app_label, p.codename) for p in group.permissions.all()} == {("core", "view_auditevent")}
    ContentType = apps.get_model("contenttypes", "ContentType")
    assert not ContentType.objects.filter(app_label="labeling", model="auditevent").exists()
    funcs = set(apps.get_model("django_q", "Schedule").objects.values_list("func", flat=True))
    assert {"work.tasks.assignments_expire", "pilot.tasks.calibration_recommendations_enqueue"} <= funcs
    assert not any(f.startswith("routing.tasks.assignments") or "calibration" in f and "routing" in f for f in funcs)
