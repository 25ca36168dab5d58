import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import AuditEvent
from labeling import import_jobs
from labeling.models import ImportJob, Item, JobStatus
from tests.labeling.conftest import row

pytestmark = pytest.mark.usefixtures("media")


def jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def upload(name, content: bytes):
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_create_enqueues_the_job_only_after_commit(project, staff, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl([row()])),
            actor=staff)
        assert queued == []
    assert len(callbacks) == 1
    assert queued == [(import_jobs.IMPORT_TASK, job.pk)]
    assert job.status == JobStatus.QUEUED and job.original_name == "a.jsonl"
    assert AuditEvent.objects.filter(action="import_job.create", object_id=str(job.pk)).exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("items.txt", b"{}", "expected a"),
    ("items.jsonl", b"", "empty"),
])
def test_create_refuses_bad_uploads(project, staff, queued, name, content, message):
    with pytest.raises(ValidationError, match=message):
        import_jobs.import_job_create(project=project, uploaded_file=upload(name, content), actor=staff)
    assert not ImportJob.objects.exists()


def test_run_imports_in_batches_and_records_progress(project, staff, queued):
    rows = [row(f"r-{i}") for i in range(7)]
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl(rows)), actor=staff)
    import_jobs.import_job_run(job_id=job.pk, batch_size=3)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.total_rows, job.processed_rows, job.created_items, job.updated_items) == (7, 7, 7, 0)
    assert job.finished_at is not None and job.errors == []
    assert Item.objects.filter(project=project).count() == 7
    # three batches, each its own ingest
    assert AuditEvent.objects.filter(action="items.ingest", data__source="import").count() == 3


def test_run_of_a_csv_file_updates_known_items(project, staff, queued):
    import_jobs.import_job_run(job_id=import_jobs.import_job_create(
        project=project, uploaded_file=upload("a.jsonl", jsonl([row("a-1")])), actor=staff).pk)
    csv_text = 'external_id,data\na-1,"{""text"": ""changed""}"\na-2,"{""text"": ""new""}"\n'
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("b.csv", csv_text.encode()), actor=staff)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.errors
    assert (job.created_items, job.updated_items) == (1, 1)
    assert Item.objects.get(project=project, external_id="a-1").data == {"text": "changed"}


def test_a_bad_row_fails_the_job_and_writes_nothing(project, staff, queued):
    rows = [row("ok-1"), row("bad", predictions=[{"model_version": "v", "probabilities": {"cat": 2}}]), {"data": {}}]
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl(rows)), actor=staff)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == JobStatus.FAILED
    assert {e["row"] for e in job.errors} == {1, 2}
    assert all(e["field"] and e["message"] for e in job.errors)
    assert not Item.objects.filter(project=project).exists()


def test_a_file_that_is_not_json_fails_with_a_file_error(project, staff, queued):
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.json", b"[{\"external_id\": "),
        actor=staff)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == JobStatus.FAILED and job.errors


def test_a_finished_job_is_not_run_twice(project, staff, queued):
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl([row()])), actor=staff)
    import_jobs.import_job_run(job_id=job.pk)
    finished = ImportJob.objects.get(pk=job.pk).finished_at
    import_jobs.import_job_run(job_id=job.pk)
    assert ImportJob.objects.get(pk=job.pk).finished_at == finished


def test_a_successful_import_deletes_the_uploaded_file(project, staff, queued, tmp_path):
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl([row()])), actor=staff)
    stored = tmp_path / job.file.name
    assert stored.exists()
    import_jobs.import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert not stored.exists() and not job.file
    assert job.original_name == "a.jsonl"  # the page still names what was imported


def test_a_failed_import_keeps_its_file(project, staff, queued, tmp_path):
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.json", b"[{"), actor=staff)
    import_jobs.import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert (tmp_path / job.file.name).exists()


def test_imports_go_through_the_configured_storage(project, staff, queued, settings, tmp_path):
    # Another backend in place of the shared folder (as an S3 bucket would be): nothing touches MEDIA_ROOT.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    job = import_jobs.import_job_create(project=project, uploaded_file=upload("a.jsonl", jsonl([row()])), actor=staff)
    assert job.file.storage.exists(job.file.name)
    assert not any(tmp_path.iterdir())
    name = job.file.name
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == JobStatus.SUCCEEDED and Item.objects.filter(project=project).count() == 1
    assert not job.file.storage.exists(name)
