from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    """The project package as an app: its commands (ensure_schedules) span every app."""

    name = "workbench"
    verbose_name = "Workbench"
