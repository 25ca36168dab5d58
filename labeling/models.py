"""Projects, items with model predictions, human annotations, gold and final labels."""
from django.conf import settings
from django.db import models

from experts.models import Role


class DataType(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    RECORD = "record", "Record"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    instructions = models.TextField(blank=True)
    data_type = models.CharField(max_length=16, choices=DataType.choices, default=DataType.TEXT)
    classes = models.JSONField(
        default=list,
        help_text='Ordered label classes: [{"name": "cat", "hotkey": "1"}, ...].',
    )
    decision_factors = models.JSONField(
        default=list, blank=True, help_text='Tags experts can tick when labeling, e.g. ["sarcasm", "jargon"].'
    )
    show_suggestion_to_crowd = models.BooleanField(
        default=False, help_text="Show the model's suggestion to crowd annotators (off by default to avoid anchoring)."
    )
    # Shown by core.access (fields_hidden_from_work, fields_hidden_from_reader); checked by
    # labeling.presentation.field_visibility_problems.
    field_visibility = models.JSONField(
        default=dict,
        blank=True,
        help_text='Who sees each restricted item field on their labeling work, e.g. {"metadata.scanner_tag": '
        '["expert", "reviewer"]} (roles: crowd, expert, reviewer). A field not listed is seen by everyone; staff '
        "see every field; in trails and decisions only staff see a restricted field.",
    )
    rationale_required = models.BooleanField(
        default=False, help_text="Require a rationale on every item (it is always required on escalated items)."
    )
    review_sample_rate = models.FloatField(
        default=0.0, help_text="Share of non-escalated labeled items also sent to a reviewer (0 to 1)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(review_sample_rate__gte=0, review_sample_rate__lte=1),
                name="project_review_sample_rate_0_1",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]


class ProjectMembership(models.Model):
    """A person on a project: annotators claim work, and stakeholders and pipelines read, only in projects
    they are members of (core.access). What they may do there comes from their role, not from here."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("project", "user")
        constraints = [
            # Also the index of the claim's membership probe (project_id, user_id).
            models.UniqueConstraint(fields=("project", "user"), name="membership_unique_project_user"),
        ]
        indexes = [models.Index(fields=("user", "project"))]

    def __str__(self) -> str:
        return f"{self.user} on {self.project}"


class ItemStatus(models.TextChoices):
    NEW = "new", "New"
    ROUTED = "routed", "Routed"
    IN_CROWD_REVIEW = "in_crowd_review", "In crowd review"
    ESCALATED = "escalated", "Escalated"
    LABELED = "labeled", "Labeled"
    AUDITED = "audited", "Audited"


class FinalSource(models.TextChoices):
    MODEL = "model", "Model"
    CONSENSUS = "consensus", "Consensus"
    EXPERT = "expert", "Expert"
    GOLD = "gold", "Gold"


class Item(models.Model):
    # No index of its own: the (project, ...) indexes below serve it, and every index slows bulk ingest.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=255)
    data = models.JSONField(help_text="The payload: text, image URL, record fields.")
    metadata = models.JSONField(default=dict, blank=True)
    domain = models.ForeignKey("experts.Domain", null=True, blank=True, on_delete=models.PROTECT, related_name="items")
    language = models.CharField(max_length=35, blank=True, help_text="BCP 47 tag, e.g. en or pt-BR.")
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.NEW)
    final_label = models.CharField(max_length=200, blank=True)
    final_source = models.CharField(max_length=16, choices=FinalSource.choices, blank=True)
    final_confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    labeled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(fields=("project", "external_id"), name="item_unique_external_id"),
        ]
        indexes = [
            models.Index(fields=("project", "status")),
            models.Index(fields=("project", "domain")),
            models.Index(fields=("project", "final_source")),
            models.Index(fields=("project", "created_at")),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.external_id}"


class Prediction(models.Model):
    # No index of its own: the unique (item, model_name, model_version) index serves lookups by item.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=200)
    probabilities = models.JSONField(help_text="Class name -> probability; known classes, each in [0,1], sum 1.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("item", "created_at", "id")
        constraints = [
            models.UniqueConstraint(fields=("item", "model_name", "model_version"),
                name="prediction_unique_model_version"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} · {self.model_name}:{self.model_version}"

    @property
    def top_label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


class Annotation(models.Model):
    # PROTECT: people's labels are kept with their item (see RoutingDecision.item).
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations")
    label = models.CharField(max_length=200)
    rationale = models.TextField(blank=True)
    factors = models.JSONField(default=list, blank=True)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Self-confidence, 1-5.")
    unsure = models.BooleanField(default=False, help_text="Flagged 'unsure / guideline unclear'.")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField()
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        ordering = ("item", "submitted_at", "id")
        indexes = [
            models.Index(fields=("annotator", "submitted_at")),
            models.Index(fields=("item", "role")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True) | models.Q(confidence__gte=1, confidence__lte=5),
                name="annotation_confidence_1_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} · {self.annotator_id}: {self.label}"


class GoldLabel(models.Model):
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold")
    label = models.CharField(max_length=200)
    provenance = models.CharField(max_length=200, blank=True, help_text="Where the gold label came from.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.item_id}: {self.label}"


class ReviewVerdict(models.TextChoices):
    AGREE = "agree", "Agree"
    OVERRIDE = "override", "Override"


class Review(models.Model):
    """A reviewer's check of a final label; an override replaces the label and counts as rework."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    verdict = models.CharField(max_length=16, choices=ReviewVerdict.choices)
    previous_label = models.CharField(max_length=200)
    label = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at",)

    def __str__(self) -> str:
        return f"{self.item_id} {self.verdict}"


class JobStatus(models.TextChoices):
    """Status of a background job with progress: imports here, calibration runs in routing."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    """A file import run in the background, with progress the import page polls."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    file = models.FileField(upload_to="imports/")
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_items = models.PositiveIntegerField(default=0)
    updated_items = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"
