"""The audit log now belongs to core (core/migrations/0001_initial.py): labeling forgets the model, the
table stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0002_drop_redundant_fk_indexes"),
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
