"""The pilot's jobs moved from routing.tasks to pilot.tasks: stored schedules name the new path."""

from django.db import migrations

MOVED = ("calibration_recommendations_enqueue", "calibration_recommend", "calibration_run")


def rename(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for name in MOVED:
        Schedule.objects.filter(func=f"{old}.{name}").update(func=f"{new}.{name}")


def forwards(apps, schema_editor):
    rename(apps, "routing.tasks", "pilot.tasks")


def backwards(apps, schema_editor):
    rename(apps, "pilot.tasks", "routing.tasks")


class Migration(migrations.Migration):

    dependencies = [
        ("pilot", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
