"""Routing models: versioned escalation policies, the decisions routing made, annotator reliabilities.

A decision stores the exact inputs it was made from and points at the immutable policy version that made
it, so `manage.py verify_decisions` can replay every decision (see docs/routing.md).
"""

from django.conf import settings
from django.db import models

from labeling.models import Item
from routing.engine.types import Outcome, Stage


class EscalationPolicy(models.Model):
    """A project's escalation policy: a history of immutable versions, one of them live."""

    project = models.OneToOneField("labeling.Project", on_delete=models.CASCADE, related_name="escalation_policy")
    # Only ever deleted together with the policy (and so its versions), hence SET_NULL rather than PROTECT.
    live_version = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
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

    item = models.ForeignKey("labeling.Item", on_delete=models.CASCADE, related_name="routing_decisions")
    # RESTRICT, not PROTECT: a version cannot be deleted while decisions cite it, but deleting a whole
    # project (which cascades to its items and their decisions) still works.
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.RESTRICT, related_name="decisions")
    stage = models.CharField(max_length=16, choices=[(s.value, s.name.title()) for s in Stage])
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
