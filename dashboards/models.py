"""Pre-computed dashboard snapshots: additive sums per project, ingest day, domain and route.

Rows are written only by `dashboards.services` (a scheduled refresh that replaces whole (project, day)
partitions under a lock on SnapshotState, hence no unique constraints here) and can be rebuilt from the source
tables at any time (`manage.py refresh_dashboards --full`). See `dashboards.rollup` for what each
figure means.
"""
from django.conf import settings
from django.db import models

from dashboards.rollup import ALL_ROUTES


class ItemStats(models.Model):
    """Sums over the items of one project ingested in one period, in one domain, on one route."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    domain = models.ForeignKey("experts.Domain", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=16, choices=[(r, r) for r in ALL_ROUTES])

    items = models.PositiveIntegerField(default=0)
    labeled = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    crowd_labels = models.PositiveIntegerField(default=0)
    expert_labels = models.PositiveIntegerField(default=0, help_text="Expert and reviewer labels.")
    statuses = models.JSONField(default=dict, help_text="Items by status.")
    seconds_to_label = models.JSONField(default=dict, help_text="Histogram {bin: items} of ingest to final label.")
    time_per_item = models.JSONField(default=dict, help_text="{role: histogram} of logged annotation time per item.")

    # metrics.AgreementStats of the crowd labels.
    agreement_items = models.PositiveIntegerField(default=0)
    agreement_labels = models.PositiveIntegerField(default=0)
    agreement_pairs = models.PositiveBigIntegerField(default=0)
    agreement_agreeing = models.PositiveBigIntegerField(default=0)
    agreement_item_sum = models.FloatField(default=0.0)
    agreement_disagreement_sum = models.FloatField(default=0.0)
    agreement_class_totals = models.JSONField(default=dict)

    # Final labels against gold.
    gold_items = models.PositiveIntegerField(default=0)
    gold_correct = models.PositiveIntegerField(default=0)
    gold_crowd_labels = models.PositiveIntegerField(default=0)
    gold_expert_labels = models.PositiveIntegerField(default=0)
    gold_by_class = models.JSONField(default=dict, help_text="{gold label: [items, correct]}.")

    # metrics.EscalationValue counts over escalated items an expert labelled.
    escalation_labelled = models.PositiveIntegerField(default=0)
    escalation_compared = models.PositiveIntegerField(default=0)
    escalation_agreed = models.PositiveIntegerField(default=0)
    escalation_with_gold = models.PositiveIntegerField(default=0)
    escalation_pre_correct = models.PositiveIntegerField(default=0)
    escalation_expert_correct = models.PositiveIntegerField(default=0)
    escalation_fixed = models.PositiveIntegerField(default=0)
    escalation_broken = models.PositiveIntegerField(default=0)

    # Expert assignments completed with a due date, and how many by then.
    sla_completed = models.PositiveIntegerField(default=0)
    sla_met = models.PositiveIntegerField(default=0)

    model_versions = models.JSONField(
        default=dict,
        help_text='{model_version: {"confidence": [10 bins], "predicted": {label: n}, '
        '"gold": {true: {predicted: n}}, "expert": {true: {predicted: n}}}} of the top predicted label.',
    )

    class Meta:
        abstract = True


class ItemDayStats(ItemStats):
    """ItemStats of the items ingested on `day` (UTC)."""

    day = models.DateField()

    class Meta:
        verbose_name_plural = "item day stats"
        indexes = [models.Index(fields=("project", "day"))]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day} {self.domain_id} {self.route}"


class ItemWeekStats(ItemStats):
    """The sum of a week's ItemDayStats (`week` is its Monday), so long date ranges read 7x fewer rows."""

    week = models.DateField()

    class Meta:
        verbose_name_plural = "item week stats"
        indexes = [models.Index(fields=("project", "week"))]

    def __str__(self) -> str:
        return f"{self.project_id} week of {self.week} {self.domain_id} {self.route}"


class AnnotatorStats(models.Model):
    """One annotator's work on the items of one project ingested in one period, in one domain, in one role."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    domain = models.ForeignKey("experts.Domain", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16)

    annotations = models.PositiveIntegerField(default=0)
    items = models.PositiveIntegerField(default=0)
    time_ms = models.PositiveBigIntegerField(default=0)
    escalated_items = models.PositiveIntegerField(default=0)
    disagreement_items = models.PositiveIntegerField(default=0)
    gold_items = models.PositiveIntegerField(default=0, help_text="Labels given on items with a gold label.")
    gold_correct = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class AnnotatorDayStats(AnnotatorStats):
    day = models.DateField()

    class Meta:
        verbose_name_plural = "annotator day stats"
        indexes = [models.Index(fields=("project", "day"))]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day} {self.annotator_id} {self.role}"


class AnnotatorWeekStats(AnnotatorStats):
    week = models.DateField()

    class Meta:
        verbose_name_plural = "annotator week stats"
        indexes = [models.Index(fields=("project", "week"))]

    def __str__(self) -> str:
        return f"{self.project_id} week of {self.week} {self.annotator_id} {self.role}"


class CrowdPairStats(models.Model):
    """How often annotator a (the lower id) gave label_a where annotator b gave label_b on the same item,
    over the crowd labels of one project's items ingested in one period, in one domain, on one route:
    the contingency tables of the agreement report's Cohen's kappa between its top annotators. Read from
    here rather than from annotations, whose number grows with the project."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="+")
    domain = models.ForeignKey("experts.Domain", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=16, choices=[(r, r) for r in ALL_ROUTES])
    annotator_a = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    annotator_b = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    label_a = models.CharField(max_length=200)
    label_b = models.CharField(max_length=200)
    pairs = models.PositiveIntegerField(default=0, help_text="Pairs of their labels on the same item.")

    class Meta:
        abstract = True


class CrowdPairDayStats(CrowdPairStats):
    day = models.DateField()

    class Meta:
        verbose_name_plural = "crowd pair day stats"
        indexes = [models.Index(fields=("project", "day"))]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day} {self.annotator_a_id}/{self.annotator_b_id}"


class CrowdPairWeekStats(CrowdPairStats):
    week = models.DateField()

    class Meta:
        verbose_name_plural = "crowd pair week stats"
        indexes = [models.Index(fields=("project", "week"))]

    def __str__(self) -> str:
        return f"{self.project_id} week of {self.week} {self.annotator_a_id}/{self.annotator_b_id}"


class SnapshotState(models.Model):
    """The one row recording how far the snapshots are refreshed."""

    # Changes at or after this moment are not in the snapshots yet (it trails the refresh start a little,
    # so rows committed by transactions still open then are picked up next time).
    changes_since = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    full_refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"snapshots refreshed at {self.refreshed_at}"
