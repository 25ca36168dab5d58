"""The pilot's record: calibration runs of a project's live policy on its own labeled history."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from labeling.models import JobStatus


class CalibrationRun(models.Model):
    """A calibration of a project's live policy on its own labeled history, run in the background (the
    policy page starts it and polls `progress`). Success stores the chosen thresholds as a draft version,
    never a live one; the scheduled recommendation re-uses the goal of the latest successful run."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="calibration_runs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done, 0 to 100.")
    # The goal: exactly one of the two.
    target_accuracy = models.FloatField(null=True, blank=True)
    budget = models.FloatField(null=True, blank=True, help_text="Labels per item.")
    last_n = models.PositiveIntegerField(help_text="The most recently labeled items calibrated on.")
    seed = models.IntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="CalibrationResult.to_dict() plus the history used.")
    error = models.TextField(blank=True)
    draft = models.ForeignKey(
        "routing.PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="calibration_runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table routing created before calibration moved to the pilot (pilot/migrations/0001_initial.py).
        db_table = "routing_calibrationrun"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("project", "-created_at"), name="calibration_run_project_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(target_accuracy__isnull=True) ^ models.Q(budget__isnull=True),
                name="calibration_run_one_goal",
            ),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="calibration_run_progress_0_100"),
        ]

    def __str__(self) -> str:
        return f"Calibration {self.pk} of {self.project} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @property
    def goal(self) -> str:
        if self.target_accuracy is not None:
            return f"accuracy ≥ {self.target_accuracy:g}, as cheaply as possible"
        return f"most accurate within {self.budget:g} labels per item"
