from django.apps import AppConfig
from django.db.models.signals import post_migrate


class WorkbenchConfig(AppConfig):
    """The project package as an app: its commands (ensure_schedules) and its schedule span every app."""

    name = "workbench"
    verbose_name = "Workbench"

    def ready(self) -> None:
        from workbench.schedules import schedules_ensure_after_migrate

        # Sent once per `migrate` for this app (it is last in INSTALLED_APPS, so every table exists by then);
        # also after a test database is created or flushed.
        post_migrate.connect(schedules_ensure_after_migrate, sender=self, dispatch_uid="workbench.schedules")
