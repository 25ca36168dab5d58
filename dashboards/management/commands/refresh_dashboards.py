"""`manage.py refresh_dashboards [--full]`: bring the dashboard snapshots up to date now."""
from django.core.management.base import BaseCommand

from dashboards.services import snapshots_refresh


class Command(BaseCommand):
    help = (
        "Refresh the dashboard snapshots: the (project, day) partitions changed since the last refresh, or "
        "every partition with --full. A schedule runs this every minute, and --full nightly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="Rebuild every partition.")

    def handle(self, *args, full: bool, **options):
        result = snapshots_refresh(full=full)
        self.stdout.write(
            self.style.SUCCESS(
                f"Refreshed {result.partitions} partition(s), {result.items} item(s)"
                + (" (full rebuild)." if result.full else ".")
            )
        )
