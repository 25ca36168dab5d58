from django.core.management.base import BaseCommand

from workbench.schedules import schedules_ensure


class Command(BaseCommand):
    help = "Create or update the background job schedules (lease expiry, SLA breaches, waiting queue, accuracy)."

    def handle(self, *args, **options):
        for schedule in schedules_ensure():
            every = (
                f"every {schedule.minutes} min" if schedule.minutes else schedule.get_schedule_type_display().lower()
            )
            self.stdout.write(f"{schedule.name}: {schedule.func} ({every})")
