"""Workbench pages of the labeling app: file import with live progress (staff only)."""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from core import access
from core.http import accepts_large_body
from labeling import import_jobs
from labeling.models import ImportJob, JobStatus
from labeling.selectors import project_list


class ImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=project_list(), empty_label=None)
    file = forms.FileField(
        help_text="JSONL (one item per line), a JSON array, or CSV with a header row; the wire format of the API.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(import_jobs.ACCEPTED_EXTENSIONS)}),
    )


@accepts_large_body
@login_required
@require_http_methods(["GET", "POST"])
def import_start(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    access.require(request, access.ADMINISTER)
    initial = {}
    if slug is not None:
        initial["project"] = get_object_or_404(project_list(), slug=slug)
    form = ImportForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            job = import_jobs.import_job_create(
                project=form.cleaned_data["project"], uploaded_file=form.cleaned_data["file"], actor=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("labeling:import_job", job_id=job.pk)
    return render(request, "labeling/import.html", {
        "form": form, "jobs": import_jobs.import_jobs_recent(), "nav": "import",
    })


def _job_context(job: ImportJob) -> dict:
    finished = job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    percent = None
    if job.total_rows:
        percent = round(100 * job.processed_rows / job.total_rows)
    return {"job": job, "finished": finished, "percent": percent}


@login_required
@require_GET
def import_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    access.require(request, access.ADMINISTER)
    job = get_object_or_404(ImportJob.objects.select_related("project", "created_by"), pk=job_id)
    return render(request, "labeling/import_job.html", {**_job_context(job), "nav": "import"})


@login_required
@require_GET
def import_job_progress(request: HttpRequest, job_id: int) -> HttpResponse:
    """The progress block alone: the job page polls it every second until the job has finished."""
    access.require(request, access.ADMINISTER)
    job = get_object_or_404(ImportJob.objects.select_related("project"), pk=job_id)
    return render(request, "labeling/_import_progress.html", _job_context(job))
