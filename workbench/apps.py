from django.apps import AppConfig
from django.db.models.signals import post_migrate


class WorkbenchConfig(AppConfig):
    """The project package as an app: its commands (ensure_schedules) and its schedule span every app."""

    name = "workbench"
    verbose_name = "Workbench"

    def ready(self) -> None:
        from django.apps import apps

        from workbench.schedules import schedules_ensure_after_migrate

        # post_migrate is sent once per app with models (this one has none), also after a test database is
        # created or flushed: listen for django-q's, whose table the schedules live in.
        post_migrate.connect(schedules_ensure_after_migrate, sender=apps.get_app_config("django_q"),
                             dispatch_uid="workbench.schedules")
