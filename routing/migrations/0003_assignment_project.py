"""Assignments carry their item's project, so a claim reads one index in deadline order (no join)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Q, Subquery

QUEUED = Q(status="offered", assignee__isnull=True)


def copy_project(apps, schema_editor):
    Assignment = apps.get_model("routing", "Assignment")
    Item = apps.get_model("labeling", "Item")
    Assignment.objects.update(project_id=Subquery(Item.objects.filter(pk=OuterRef("item_id")).values("project_id")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0002_drop_redundant_fk_indexes"),
        ("routing", "0002_assignments"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="labeling.project",
            ),
        ),
        migrations.RunPython(copy_project, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="assignment",
            name="project",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="assignments",
                to="labeling.project",
            ),
        ),
        migrations.RemoveIndex(model_name="assignment", name="assignment_claim_idx"),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(
                condition=QUEUED, fields=["project", "kind", "due_at", "id"], name="assignment_queue_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(condition=QUEUED, fields=["kind", "due_at", "id"], name="assignment_queue_all_idx"),
        ),
        migrations.AddIndex(
            model_name="assignment",
            index=models.Index(
                condition=models.Q(status__in=["offered", "active"]),
                fields=["kind", "due_at"],
                name="assignment_open_due_idx",
            ),
        ),
    ]
