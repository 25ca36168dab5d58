"""Calibration runs move from routing to the pilot without touching their table: the model is created in
Django's state only, over the table routing made (routing_calibrationrun, kept as db_table), and its
content type (with the permissions granted on it) follows."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def content_type_to_pilot(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="routing", model="calibrationrun").update(app_label="pilot")


def content_type_to_routing(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="pilot", model="calibrationrun").update(app_label="routing")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("labeling", "0003_auditevent_moved_to_core"),
        ("routing", "0008_calibrationrun_moved_to_pilot"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='CalibrationRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=16)),
                        ('progress', models.PositiveSmallIntegerField(default=0, help_text='Percent done, 0 to 100.')),
                        ('target_accuracy', models.FloatField(blank=True, null=True)),
                        ('budget', models.FloatField(blank=True, help_text='Labels per item.', null=True)),
                        ('last_n', models.PositiveIntegerField(help_text='The most recently labeled items calibrated on.')),
                        ('seed', models.IntegerField(default=0)),
                        ('result', models.JSONField(blank=True, default=dict, help_text='CalibrationResult.to_dict() plus the history used.')),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('draft', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='calibration_runs', to='routing.policyversion')),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='calibration_runs', to='labeling.project')),
                    ],
                    options={
                        'db_table': 'routing_calibrationrun',
                        'ordering': ('-created_at', '-id'),
                        'indexes': [models.Index(fields=['project', '-created_at'], name='calibration_run_project_idx')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('target_accuracy__isnull', True), ('budget__isnull', True), _connector='XOR'), name='calibration_run_one_goal'), models.CheckConstraint(condition=models.Q(('progress__lte', 100)), name='calibration_run_progress_0_100')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_pilot, content_type_to_routing),
    ]
