"""Replay every stored routing decision from its stored inputs and policy version; exit 1 on any mismatch."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from routing.inputs import CHUNK_SIZE
from routing.selectors import decisions_verify

SHOWN_IDS = 50


class Command(BaseCommand):
    help = (
        "Re-evaluate every stored decision from its stored inputs under its own policy version and report "
        "decisions whose outcome, label, confidence, reasons, signals or inputs digest differ."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", metavar="SLUG", help="only this project's decisions")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)

    def handle(self, *args, project: str | None = None, chunk_size: int = CHUNK_SIZE, **options) -> None:
        selected = None
        if project:
            selected = Project.objects.filter(slug=project).first()
            if selected is None:
                raise CommandError(f"no project with slug {project!r}")
        report = decisions_verify(project=selected, chunk_size=chunk_size)
        self.stdout.write(f"checked {report.checked} decisions, {len(report.mismatches)} mismatches")
        for mismatch in report.mismatches[:SHOWN_IDS]:
            self.stdout.write(f"  decision {mismatch.decision_id}: {', '.join(mismatch.fields)}")
        if len(report.mismatches) > SHOWN_IDS:
            self.stdout.write(f"  ... and {len(report.mismatches) - SHOWN_IDS} more")
        if report.mismatches:
            ids = ",".join(str(m.decision_id) for m in report.mismatches)
            raise CommandError(f"{len(report.mismatches)} decisions do not replay: ids {ids}")
