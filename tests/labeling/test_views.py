import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling import import_jobs
from labeling.models import ImportJob, JobStatus
from tests.labeling.conftest import row

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def jsonl_file(rows, name="items.jsonl"):
    return SimpleUploadedFile(name, "\n".join(json.dumps(r) for r in rows).encode())


def test_import_page_is_for_staff_only(client, annotator_user, project):
    url = reverse("labeling:import")
    assert client.get(url).status_code == 302
    client.force_login(annotator_user)
    assert client.get(url).status_code == 403
    assert client.post(url, {"project": project.pk, "file": jsonl_file([row()])}).status_code == 403
    assert not ImportJob.objects.exists()


def test_upload_queues_a_job_and_shows_its_progress_page(staff_client, project, queued,
    django_capture_on_commit_callbacks):
    page = staff_client.get(reverse("labeling:project_import", args=[project.slug]))
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers and "script-src 'self'" in page.headers["Content-Security-Policy"]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("labeling:import"), {"project": project.pk, "file": jsonl_file([row()])})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("labeling:import_job", args=[job.pk])
    assert queued == [(import_jobs.IMPORT_TASK, job.pk)]
    detail = staff_client.get(response["Location"]).content.decode()
    # Still queued: the progress block polls its own URL.
    assert f'hx-get="{reverse("labeling:import_job_progress", args=[job.pk])}"' in detail


def test_upload_of_a_wrong_file_type_is_refused_on_the_form(staff_client, project, queued):
    response = staff_client.post(reverse("labeling:import"),
        {"project": project.pk, "file": jsonl_file([row()], "x.xlsx")})
    assert response.status_code == 200
    assert "expected a .jsonl" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_progress_stops_polling_when_done_and_reports_the_count(staff_client, project, staff, queued):
    job = import_jobs.import_job_create(project=project, uploaded_file=jsonl_file([row("a"), row("b")]), actor=staff)
    import_jobs.import_job_run(job_id=job.pk)
    body = staff_client.get(reverse("labeling:import_job_progress", args=[job.pk])).content.decode()
    assert "hx-get" not in body
    assert "Imported 2 items: 2 new, 0 updated." in body


def test_progress_lists_errors_by_row_counted_from_one(staff_client, project, staff, queued):
    rows = [row("a"), row("b", predictions=[{"model_version": "v", "probabilities": {"wolf": 1.0}}])]
    job = import_jobs.import_job_create(project=project, uploaded_file=jsonl_file(rows), actor=staff)
    job = import_jobs.import_job_run(job_id=job.pk)
    assert job.status == JobStatus.FAILED
    body = staff_client.get(reverse("labeling:import_job_progress", args=[job.pk])).content.decode()
    assert "Import failed" in body
    assert "<tr><td>2</td>" in body  # the second row of the file (row index 1)
