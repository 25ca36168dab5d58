"""Calibration runs now belong to the pilot (pilot/migrations/0001_initial.py): routing forgets the model,
the table stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("routing", "0007_class_prior_recheck"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="CalibrationRun")],
            database_operations=[],
        ),
    ]
