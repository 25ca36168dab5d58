"""File imports run as background jobs: the import page uploads a file, a django-q2 worker imports it, and
the page polls the job's progress.

The job first validates the whole file (nothing is written if any row is bad, and every bad row is
listed), then ingests it in batches through `items_ingest`, each batch its own transaction, updating
`processed_rows` after each so the page can show progress. Ingest is idempotent by external id, so a job
that died mid-way can simply be run again.
"""
from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from core.audit import audit_record
from labeling.formats import FormatError, detect_format, read_rows
from labeling.models import ImportJob, JobStatus, Project
from labeling.services import IngestValidationError, items_ingest, items_validate_stream

logger = logging.getLogger(__name__)

IMPORT_TASK = "labeling.tasks.import_job_run"
# Rows per write transaction: small enough that the progress bar moves every second or so on a big file.
IMPORT_BATCH_SIZE = 500
ACCEPTED_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")
FILE_FIELD = "(file)"
_HEAD_CHARS = 4096


def _file_error(message: str) -> list[dict[str, Any]]:
    return [{"row": None, "field": FILE_FIELD, "message": message}]


def import_job_create(*, project: Project, uploaded_file: UploadedFile, actor: Any) -> ImportJob:
    """Store the upload as a queued job and start the background import once the job is committed."""
    name = (uploaded_file.name or "").rsplit("/", 1)[-1]
    if not name.lower().endswith(ACCEPTED_EXTENSIONS):
        raise ValidationError({"file": f"{name or 'the file'}: expected a {', '.join(ACCEPTED_EXTENSIONS)} file"})
    if uploaded_file.size is not None and uploaded_file.size > settings.INGEST_MAX_BYTES:
        raise ValidationError(
            {"file": f"{name} is {uploaded_file.size:,} bytes; the limit is {settings.INGEST_MAX_BYTES:,} bytes"}
        )
    if not uploaded_file.size:
        raise ValidationError({"file": f"{name} is empty"})
    with transaction.atomic():
        job = ImportJob(project=project, created_by=actor, original_name=name[:255])
        job.file.save(name, uploaded_file, save=False)
        job.save()
        audit_record(
            actor=actor, action="import_job.create", obj_type="labeling.ImportJob", obj_id=job.pk,
            data={"project": project.slug, "file": name, "bytes": uploaded_file.size},
        )
        # Only a committed job may start: a rolled-back upload must never be imported.
        transaction.on_commit(lambda: async_task(IMPORT_TASK, job.pk, task_name=f"import-job-{job.pk}"))
    return job


def _batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _open_text(job: ImportJob) -> tuple[io.TextIOWrapper, str]:
    """The job's file as text (UTF-8, a BOM tolerated) and its format."""
    raw = job.file.open("rb")
    stream = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    head = stream.read(_HEAD_CHARS)
    stream.seek(0)
    return stream, detect_format(name=job.original_name, head=head)


def _finish(job: ImportJob, *, status: str, errors: list[dict[str, Any]] | None = None) -> ImportJob:
    job.status = status
    job.finished_at = timezone.now()
    if errors is not None:
        job.errors = errors
    job.save(update_fields=["status", "finished_at", "errors", "total_rows", "processed_rows", "created_items",
                            "updated_items"])
    audit_record(
        actor=job.created_by, action=f"import_job.{status}", obj_type="labeling.ImportJob", obj_id=job.pk,
        data={
            "project_id": job.project_id, "file": job.original_name, "rows": job.total_rows,
            "processed_rows": job.processed_rows, "created": job.created_items, "updated": job.updated_items,
            "errors": len(job.errors),
        },
    )
    return job


def _validation_errors(exc: IngestValidationError, offset: int = 0) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors:
        row = error.to_dict()
        if row["row"] is not None:
            row["row"] += offset
        errors.append(row)
    if exc.truncated:
        errors += _file_error(f"only the first {len(exc.errors)} of {exc.error_count} errors are listed")
    return errors


def import_job_run(*, job_id: int, batch_size: int = IMPORT_BATCH_SIZE) -> ImportJob:
    """Validate the job's whole file, then import it batch by batch, recording progress and the outcome.

    A finished job is left as it is (a retried task does nothing twice)."""
    job = ImportJob.objects.select_related("project", "created_by").get(pk=job_id)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        return job
    job.status = JobStatus.RUNNING
    job.processed_rows = job.created_items = job.updated_items = 0
    job.errors = []
    job.save(update_fields=["status", "processed_rows", "created_items", "updated_items", "errors"])
    project = job.project
    try:
        stream, fmt = _open_text(job)
    except (OSError, UnicodeDecodeError) as exc:
        return _finish(job, status=JobStatus.FAILED, errors=_file_error(f"cannot read the file: {exc}"))
    with stream:
        try:
            job.total_rows = items_validate_stream(project=project, stream=stream, fmt=fmt)
        except IngestValidationError as exc:
            return _finish(job, status=JobStatus.FAILED, errors=_validation_errors(exc))
        except (FormatError, UnicodeDecodeError, csv.Error) as exc:
            return _finish(job, status=JobStatus.FAILED, errors=_file_error(f"not a valid {fmt} file: {exc}"))
        if job.total_rows == 0:
            return _finish(job, status=JobStatus.FAILED, errors=_file_error("the file holds no rows"))
        ImportJob.objects.filter(pk=job.pk).update(total_rows=job.total_rows)
        stream.seek(0)
        try:
            for batch in _batched(read_rows(stream, fmt), batch_size):
                result = items_ingest(project=project, rows=batch, actor=job.created_by, source="import")
                job.processed_rows += len(batch)
                job.created_items += result.created
                job.updated_items += result.updated
                ImportJob.objects.filter(pk=job.pk).update(
                    processed_rows=job.processed_rows, created_items=job.created_items,
                    updated_items=job.updated_items,
                )
        except IngestValidationError as exc:
            # Only when the file changed between the two passes; the batches before stay imported.
            return _finish(job, status=JobStatus.FAILED, errors=_validation_errors(exc, job.processed_rows))
        except Exception as exc:
            logger.exception("import job %s failed", job.pk)
            _finish(job, status=JobStatus.FAILED, errors=_file_error(f"the import stopped: {exc}"))
            raise
    return _finish(job, status=JobStatus.SUCCEEDED)


def import_jobs_recent(*, project: Project | None = None, limit: int = 10) -> QuerySet[ImportJob]:
    """The latest import jobs (of one project, or all), newest first."""
    qs = ImportJob.objects.select_related("project", "created_by").order_by("-created_at", "-id")
    if project is not None:
        qs = qs.filter(project=project)
    return qs[:limit]
