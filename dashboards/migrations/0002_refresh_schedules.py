"""Schedule the snapshot refresh: changed partitions every minute, a full rebuild every night."""
import datetime as dt

from django.db import migrations

TASK = "dashboards.tasks.snapshots_refresh"
INCREMENTAL = "dashboards: refresh snapshots"
NIGHTLY = "dashboards: rebuild snapshots"


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=INCREMENTAL,
        defaults={"func": TASK, "schedule_type": "I", "minutes": 1, "repeats": -1},
    )
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    Schedule.objects.get_or_create(
        name=NIGHTLY,
        defaults={
            "func": TASK,
            "kwargs": "{'full': True}",
            "schedule_type": "D",
            "repeats": -1,
            "next_run": dt.datetime.combine(tomorrow, dt.time(3, 0), tzinfo=dt.UTC),
        },
    )


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[INCREMENTAL, NIGHTLY]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboards", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, delete_schedules)]
