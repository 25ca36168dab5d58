"""The one write of the audit log, for every app."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.models import AuditEvent


def actor_or_none(actor: Any) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def audit_record(*, actor: Any, action: str, obj_type: str, obj_id: Any,
    data: Mapping[str, Any] | None = None) -> AuditEvent:
    """Append one event to the audit log (rows are never changed or deleted). Call it inside the
    transaction of the change it records, so the event exists exactly when the change does."""
    return AuditEvent.objects.create(
        actor=actor_or_none(actor), action=action, object_type=obj_type, object_id=str(obj_id), data=dict(data or {}),
    )
