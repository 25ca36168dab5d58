"""Import a large JSONL, CSV or JSON-array file of items into a project.

The whole file is validated first in one streaming pass, so nothing is written if any row is bad (errors
are printed with their row numbers, 0-based as in the API). Then it is written in batches of --batch-size
rows, each batch in its own transaction; if a write fails mid-way the earlier batches stay, and re-running
the same import is safe because ingest is idempotent by external_id.
"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import formats, services
from labeling.models import Project

_HEAD_BYTES = 4096


class _RawStream:
    """tqdm redraws with carriage returns; Django's OutputWrapper would add a newline to every write."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")

    def flush(self) -> None:
        self._wrapper.flush()


class Command(BaseCommand):
    help = "Import items (JSONL, CSV or a JSON array such as a Label Studio export) into a project."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--batch-size", type=int, default=services.INGEST_CHUNK_SIZE)
        parser.add_argument("--format", choices=formats.FORMATS, help="Default: from the file name or content.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bars (e.g. in logs).")

    def handle(self, *args, file: Path, project: str, batch_size: int, format: str | None, no_progress: bool,
        **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            target = Project.objects.get(slug=project)
        except Project.DoesNotExist as exc:
            raise CommandError(f"no project with slug {project!r}") from exc
        if not file.is_file():
            raise CommandError(f"{file} is not a file")
        with file.open("rb") as raw:
            head = raw.read(_HEAD_BYTES).decode("utf-8", "ignore")
        fmt = format or formats.detect_format(name=file.name, head=head)

        bars: dict[str, tqdm] = {}
        counts: dict[str, int] = {}
        labels = {"validate": "validating", "import": "importing"}

        def on_progress(stage: str, done: int) -> None:
            if stage not in bars:
                if stage == "import" and "validate" in bars:
                    bars["validate"].close()
                total = counts.get("rows") if stage == "import" else None
                bars[stage] = tqdm(total=total, desc=labels[stage], unit=" rows", file=_RawStream(self.stderr),
                                   disable=no_progress, dynamic_ncols=True)
            bar = bars[stage]
            bar.update(done - bar.n)
            if stage == "validate":
                counts["rows"] = done

        try:
            with file.open("r", encoding="utf-8-sig", newline="") as stream:
                result = services.items_import_stream(
                    project=target, stream=stream, fmt=fmt, batch_size=batch_size, source=f"command:{file.name}",
                    on_progress=on_progress,
                )
        except services.IngestValidationError as exc:
            for bar in bars.values():
                bar.close()
            for error in exc.errors:
                where = f"row {error.row}" if error.row is not None else "file"
                self.stderr.write(f"{where}: {error.field}: {error.message}")
            if exc.truncated:
                self.stderr.write(f"... {exc.error_count - len(exc.errors)} more errors not shown")
            raise CommandError(f"{exc.error_count} error(s) in {file}; nothing was imported") from exc
        except formats.FormatError as exc:
            raise CommandError(f"cannot read {file} as {fmt}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"{counts.get('rows', 0)} rows: {result.created} created, {result.updated} updated, "
            f"{result.predictions_added} predictions added, {result.annotations_added} annotations added"
        ))
