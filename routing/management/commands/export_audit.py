"""Write audit events (and, with --decisions, routing decisions) in a time window as JSON lines."""

import contextlib

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.replicas import replica_alias
from routing.selectors import audit_export_lines, parse_bound


class Command(BaseCommand):
    help = "Export audit events in [--since, --until) as JSONL; --decisions adds the routing decisions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="YYYY-MM-DD or ISO 8601 datetime (inclusive)")
        parser.add_argument("--until", help="YYYY-MM-DD (that whole day included) or datetime; default now")
        parser.add_argument("--decisions", action="store_true", help="also export routing decisions")
        parser.add_argument("--out", metavar="FILE", help="write here instead of standard output")

    def handle(self, *args, since: str, until: str | None, decisions: bool, out: str | None, **options) -> None:
        try:
            start = parse_bound(since, end=False)
            end = parse_bound(until, end=True) if until else timezone.now()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if end <= start:
            raise CommandError("--until must be after --since")
        count = 0
        # Every line ends in a newline, so stdout's wrapper adds none of its own.
        with open(out, "w", encoding="utf-8") if out else contextlib.nullcontext(self.stdout) as target:
            lines = audit_export_lines(since=start, until=end, events=True, decisions=decisions, using=replica_alias())
            for line in lines:
                target.write(line)
                count += 1
        if out:
            self.stderr.write(f"wrote {count} lines to {out}")
