"""What every app may record: the append-only audit log."""
from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only log of consequential actions; rows are only ever inserted (core.audit.audit_record)."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True, help_text="Before/after and other evidence.")
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # The table labeling created before the log moved here (core/migrations/0001_initial.py).
        db_table = "labeling_auditevent"
        ordering = ("at", "id")
        indexes = [models.Index(fields=("object_type", "object_id"))]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"
