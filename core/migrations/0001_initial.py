"""The audit log moves from labeling to core without touching its table: this creates the model in
Django's state only, over the table labeling made (labeling_auditevent, kept as db_table), and hands its
content type (and so every permission granted on it) to core."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to_core(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="labeling", model="auditevent").update(app_label="core")


def content_type_to_labeling(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="core", model="auditevent").update(app_label="labeling")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("labeling", "0002_drop_redundant_fk_indexes"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("action", models.CharField(max_length=100)),
                        ("object_type", models.CharField(max_length=100)),
                        ("object_id", models.CharField(max_length=100)),
                        ("data", models.JSONField(blank=True, default=dict, help_text="Before/after and other evidence.")),
                        ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "labeling_auditevent",
                        "ordering": ("at", "id"),
                        "indexes": [models.Index(fields=["object_type", "object_id"], name="labeling_au_object__98a6f1_idx")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_core, content_type_to_labeling),
    ]
