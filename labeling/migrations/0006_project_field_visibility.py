"""Project.hidden_fields (a list of fields hidden from the crowd) becomes Project.field_visibility (who
sees each restricted field): every hidden field keeps being seen by experts and reviewers and by nobody
else on labeling work, as before. Reversing keeps the fields the crowd does not see."""

from django.db import migrations, models

# What hidden_fields meant: seen on their own work by experts and reviewers, not by the crowd.
HIDDEN_FROM_CROWD = ["expert", "reviewer"]


def hidden_fields_to_visibility(apps, schema_editor):
    Project = apps.get_model("labeling", "Project")
    # The database being migrated, not the router's choice (`migrate --database`).
    for project in Project.objects.using(schema_editor.connection.alias).only("pk", "hidden_fields"):
        paths = [str(p).strip() for p in project.hidden_fields or () if str(p).strip()]
        if paths:
            project.field_visibility = {path: list(HIDDEN_FROM_CROWD) for path in paths}
            project.save(update_fields=["field_visibility"])


def visibility_to_hidden_fields(apps, schema_editor):
    Project = apps.get_model("labeling", "Project")
    for project in Project.objects.using(schema_editor.connection.alias).only("pk", "field_visibility"):
        paths = [path for path, roles in (project.field_visibility or {}).items() if "crowd" not in roles]
        if paths:
            project.hidden_fields = paths
            project.save(update_fields=["hidden_fields"])


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0005_protect_labeled_items"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="field_visibility",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Who sees each restricted item field on their labeling work, e.g. {"metadata.scanner_tag": '
                '["expert", "reviewer"]} (roles: crowd, expert, reviewer). A field not listed is seen by everyone; '
                "staff see every field; in trails and decisions only staff see a restricted field.",
            ),
        ),
        migrations.RunPython(hidden_fields_to_visibility, visibility_to_hidden_fields),
        migrations.RemoveField(
            model_name="project",
            name="hidden_fields",
        ),
    ]
