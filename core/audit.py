"""The one write of the audit log, for every app, and the audited saves and deletes the admin makes."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Model

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


def _jsonable(value: Any) -> Any:
    # Dates, decimals and UUIDs as text, the way the audit export writes them.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _values(obj: Model, fields: Iterable[str]) -> dict[str, Any]:
    meta = obj._meta
    return {name: _jsonable(meta.get_field(name).value_from_object(obj)) for name in fields}


def _editable_fields(obj: Model, names: Iterable[str] | None = None) -> list[str]:
    """Concrete, editable, non-key fields of `obj`, limited to `names` (a form's changed_data) if given."""
    fields = [f.name for f in obj._meta.concrete_fields if f.editable and not f.primary_key]
    return fields if names is None else [f for f in fields if f in set(names)]


def object_save_audited(*, obj: Model, actor: Any, changed: Iterable[str] | None = None, obj_type: str = "") -> Model:
    """Save an admin's edit of `obj` and record it: for a new object every field, for an existing one the
    `changed` fields (a form's changed_data) before and after. Only the changed columns are written, so a
    counter a claim bumps while the form was open (Expert.claims_made) is not set back."""
    obj_type = obj_type or obj._meta.label
    with transaction.atomic():
        if obj.pk is None or obj._state.adding:
            obj.save()
            audit_record(actor=actor, action="admin.create", obj_type=obj_type, obj_id=obj.pk,
                         data={"after": _values(obj, _editable_fields(obj))})
            return obj
        fields = _editable_fields(obj, changed)
        if not fields:
            return obj
        stored = type(obj)._default_manager.get(pk=obj.pk)
        obj.save(update_fields=fields)
        audit_record(actor=actor, action="admin.update", obj_type=obj_type, obj_id=obj.pk,
                     data={"before": _values(stored, fields), "after": _values(obj, fields)})
    return obj


def objects_delete_audited(*, objs: Iterable[Model], actor: Any, obj_type: str = "") -> int:
    """Delete what an admin deleted, recording each object's fields first; all or nothing. A protected
    relation (an item's routing decisions and annotations) raises ProtectedError and nothing is deleted:
    the admin refuses such deletes before calling this, naming what protects them."""
    deleted = 0
    with transaction.atomic():
        for obj in objs:
            snapshot = _values(obj, _editable_fields(obj))
            pk = obj.pk
            _, by_model = obj.delete()
            audit_record(actor=actor, action="admin.delete", obj_type=obj_type or obj._meta.label, obj_id=pk,
                         data={"before": snapshot, "deleted": by_model})
            deleted += 1
    return deleted
