"""Routing models: versioned escalation policies, the decisions routing made, annotator reliabilities, and
the assignments (work slots) decisions create.

A decision stores the exact inputs it was made from and points at the immutable policy version that made
it, so `manage.py verify_decisions` can replay every decision (see docs/routing.md). The expert ranking
stored beside it is evidence of whom the work was offered to, not an input of the decision.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from labeling.models import Item
from routing.engine.types import Outcome, Stage


class EscalationPolicy(models.Model):
    """A project's escalation policy: a history of immutable versions, one of them live."""

    project = models.OneToOneField("labeling.Project", on_delete=models.CASCADE, related_name="escalation_policy")
    # Only ever deleted together with the policy (and so its versions), hence SET_NULL rather than PROTECT.
    live_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The classes' prevalence as the last reliability refresh learned it: {"classes": [...], "prior": [...]}
    # (routing.reliabilities.accuracy_refresh). Routing hands it to the engine as ItemInput.class_prior.
    class_prior = models.JSONField(default=dict, blank=True, editable=False)
    # The model's temperature the last refresh fitted (policy learn_model_temperature; null: none yet).
    # Routing hands it to the engine as ItemInput.model_temperature.
    model_temperature = models.FloatField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "escalation policies"
        ordering = ("project__name",)

    def __str__(self) -> str:
        return f"Escalation policy of {self.project}"


class PolicyVersion(models.Model):
    """One immutable set of policy fields; `published_at` is null for a draft, which never routes."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(help_text="PolicyConfig.to_dict() of this version.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    change_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("policy", "-number")
        constraints = [
            models.UniqueConstraint(fields=("policy", "number"), name="policy_version_unique_number"),
        ]

    def __str__(self) -> str:
        kind = "" if self.published_at else " (draft)"
        return f"{self.policy.project} v{self.number}{kind}"

    @property
    def is_draft(self) -> bool:
        return self.published_at is None


class RoutingDecision(models.Model):
    """What routing decided for an item, from which inputs, under which policy version; never updated."""

    # PROTECT: an item's decision trail is its audit evidence, so an item with decisions (every routed
    # item) cannot be deleted by accident or by cascade; routing.services.project_purge removes a whole
    # project deliberately (the demo's --reset, benchmarks).
    item = models.ForeignKey("labeling.Item", on_delete=models.PROTECT, related_name="routing_decisions")
    # RESTRICT, not PROTECT: a version cannot be deleted while decisions cite it, but deleting a whole
    # project (which cascades to its items and their decisions) still works.
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.RESTRICT, related_name="decisions")
    stage = models.CharField(max_length=16, choices=[(s.value, s.name.replace("_", " ").capitalize()) for s in Stage])
    inputs = models.JSONField(help_text="The item input and annotator reliabilities evaluated, canonical JSON.")
    inputs_digest = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=[(o.value, o.name.title()) for o in Outcome])
    final_label = models.CharField(max_length=200, blank=True)
    final_source = models.CharField(max_length=16, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    posterior = models.JSONField(default=dict, blank=True)
    reasons = models.JSONField(default=list, blank=True, help_text='[{"code": ..., "evidence": ...}, ...]')
    signals = models.JSONField(default=dict, blank=True)
    labels_requested = models.PositiveIntegerField(default=0)
    # experts.ranking.Ranking.to_dict() when the decision offered expert work: candidates, rejections and the
    # explanation in words. Not part of inputs_digest: it depends on the roster and the clock at the time.
    expert_ranking = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("item", "created_at", "id")
        indexes = [
            models.Index(fields=("item", "created_at")),
            models.Index(fields=("outcome",)),
            # Audit export pulls decisions by time window.
            models.Index(fields=("created_at",)),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} {self.stage}: {self.outcome}"


class AnnotatorReliability(models.Model):
    """Estimated confusion of one annotator in one project; routing reads it as the engine's reliabilities."""

    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="annotator_reliabilities")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_reliabilities"
    )
    # The class order the matrix was estimated in; a row whose classes no longer match the project is ignored.
    classes = models.JSONField(default=list)
    confusion = models.JSONField(help_text="confusion[true][given], rows summing to 1, in `classes` order.")
    n_observations = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "annotator reliabilities"
        constraints = [
            models.UniqueConstraint(fields=("project", "annotator"), name="annotator_reliability_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project} · {self.annotator_id}"


class RoutedItem(Item):
    """Items as routing's admin sees them (labeling's own admin cannot import routing to offer re-route)."""

    class Meta:
        proxy = True
        verbose_name = "routed item"


class AssignmentKind(models.TextChoices):
    CROWD = "crowd", "Crowd label"
    EXPERT = "expert", "Expert label"
    REVIEW = "review", "Review"
    GOLD_CHECK = "gold_check", "Gold check"


class AssignmentStatus(models.TextChoices):
    OFFERED = "offered", "Offered"  # waiting for its assignee to start, or in a queue when nobody is assigned
    ACTIVE = "active", "Active"  # claimed: its assignee holds a lease on it
    COMPLETED = "completed", "Completed"
    # The lease ran out (a fresh slot took its place), or a crowd offer went unclaimed past its deadline.
    EXPIRED = "expired", "Expired"
    DECLINED = "declined", "Declined"
    CANCELLED = "cancelled", "Cancelled"  # no longer needed (the item was labeled) or reassigned


OPEN_ASSIGNMENT_STATUSES = (AssignmentStatus.OFFERED, AssignmentStatus.ACTIVE)
# An unassigned offered slot waits in a queue for someone to claim it.
QUEUED = models.Q(status="offered", assignee__isnull=True)


class Assignment(models.Model):
    """One slot of work on one item: a crowd or expert label, a review, or a hidden gold check.

    A slot without an assignee waits in a queue (crowd, reviewers, or the experts of the item's domain) until
    someone claims it; claiming sets the assignee and a lease. See docs/assignments.md.
    """

    # No index of its own: the (item, status) index serves lookups by item.
    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="assignments", db_index=False)
    # The item's project, copied: a claim filters on it without joining items, so the claim index alone
    # yields a project's queue in deadline order whatever the planner's statistics say.
    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments"
    )
    kind = models.CharField(max_length=16, choices=AssignmentKind.choices)
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.OFFERED)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="SLA deadline.")
    decision = models.ForeignKey(
        RoutingDecision, null=True, blank=True, on_delete=models.SET_NULL, related_name="assignments"
    )
    annotation = models.OneToOneField(
        "labeling.Annotation", null=True, blank=True, on_delete=models.SET_NULL, related_name="assignment"
    )
    decline_reason = models.TextField(blank=True)
    # Not auto_now_add: services pass their `now`, so jobs and tests can run at a chosen time.
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("due_at", "id")
        constraints = [
            # One person never holds two open slots of the same item (open slots without assignee are many).
            models.UniqueConstraint(
                fields=("item", "assignee"),
                condition=models.Q(status__in=["offered", "active"]),
                name="assignment_one_open_slot_per_person_and_item",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="active") | models.Q(assignee__isnull=False),
                name="assignment_active_has_assignee",
            ),
        ]
        indexes = [
            # The claim: a queue (unassigned offered slots of one kind, in a project or in all), soonest
            # deadline first. Partial, so the queue condition is the index's and it returns rows in order.
            models.Index(
                fields=("project", "kind", "due_at", "id"), condition=QUEUED, name="assignment_queue_idx"
            ),
            models.Index(fields=("kind", "due_at", "id"), condition=QUEUED, name="assignment_queue_all_idx"),
            # The dashboard's open expert work of a project: how many, how many overdue, the oldest due.
            models.Index(
                fields=("project", "kind", "due_at"), condition=models.Q(status__in=["offered", "active"]),
                name="assignment_project_open_idx",
            ),
            # SLA checks: open slots of a kind by deadline.
            models.Index(
                fields=("kind", "due_at"), condition=models.Q(status__in=["offered", "active"]),
                name="assignment_open_due_idx"
            ),
            models.Index(fields=("item", "status"), name="assignment_item_status_idx"),
            # A claim checks capacity by counting the claimer's open slots: the index holds only those.
            models.Index(
                fields=("assignee",),
                condition=models.Q(status__in=["offered", "active"]),
                name="assignment_open_assignee_idx",
            ),
            # Lease expiry scans active slots by lease end.
            models.Index(fields=("status", "lease_expires_at"), name="assignment_lease_idx"),
        ]

    def __str__(self) -> str:
        who = self.assignee_id or "queue"
        return f"{self.get_kind_display()} of item {self.item_id} for {who} ({self.status})"
