"""The assignment jobs moved from routing.tasks to work.tasks: stored schedules name the new path."""

from django.db import migrations

MOVED = ("assignments_expire", "sla_breaches_handle", "crowd_breaches_escalate", "waiting_assign")


def rename(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for name in MOVED:
        Schedule.objects.filter(func=f"{old}.{name}").update(func=f"{new}.{name}")


def forwards(apps, schema_editor):
    rename(apps, "routing.tasks", "work.tasks")


def backwards(apps, schema_editor):
    rename(apps, "work.tasks", "routing.tasks")


class Migration(migrations.Migration):

    dependencies = [
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
