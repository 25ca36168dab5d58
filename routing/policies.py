"""Writes of escalation policies: immutable versions published, rolled back or saved as drafts, and a
draft previewed on the project's latest items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.audit import audit_record
from labeling.models import (
    Project,
)
from routing import inputs, selectors
from routing.engine.policy import DEFAULT_POLICY, evaluate, policy_errors
from routing.engine.types import Outcome, PolicyConfig

# The assignment errors are part of this module's interface: callers catch services.AssignmentNotFound etc.
from routing.models import (
    EscalationPolicy,
    PolicyVersion,
)


def policy_for_project(project: Project) -> EscalationPolicy:
    """The project's escalation policy, created on first use with version 1 = the default policy."""
    policy = EscalationPolicy.objects.select_related("live_version").filter(project=project).first()
    if policy is not None and policy.live_version_id is not None:
        return policy
    with transaction.atomic():
        policy, _ = EscalationPolicy.objects.get_or_create(project=project)
        policy = (
            EscalationPolicy.objects.select_for_update(of=("self",)).select_related("live_version").get(pk=policy.pk)
        )
        if policy.live_version_id is None:
            _publish(
                policy=policy,
                config=DEFAULT_POLICY,
                author=None,
                change_note="Default policy, created on first use.",
                action="policy_version.create_default",
            )
    return policy


def _validated(config: PolicyConfig) -> PolicyConfig:
    errors = policy_errors(config)
    if errors:
        raise ValidationError(errors)
    return config


def _next_number(policy: EscalationPolicy) -> int:
    return (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def _publish(
    *,
    policy: EscalationPolicy,
    config: PolicyConfig,
    author: AbstractBaseUser | None,
    change_note: str,
    action: str,
    extra: Mapping[str, Any] | None = None,
) -> PolicyVersion:
    """Append a published version and make it live; `policy` must be locked by the caller's transaction."""
    before = policy.live_version
    version = PolicyVersion.objects.create(
        policy=policy,
        number=_next_number(policy),
        config=config.to_dict(),
        author=author,
        change_note=change_note,
        published_at=timezone.now(),
    )
    policy.live_version = version
    policy.save(update_fields=["live_version"])
    audit_record(
        actor=author,
        action=action,
        obj_type="routing.PolicyVersion",
        obj_id=version.pk,
        data={
            "project": policy.project.slug,
            "policy_id": policy.pk,
            "number": version.number,
            "change_note": change_note,
            "before_version": before.number if before else None,
            "before": before.config if before else None,
            "after": version.config,
            **(extra or {}),
        },
    )
    return version


def _locked(policy: EscalationPolicy) -> EscalationPolicy:
    # Locking the policy row serialises version numbering and the live pointer per project.
    return (
        EscalationPolicy.objects.select_for_update(of=("self",))
        .select_related("project", "live_version")
        .get(pk=policy.pk)
    )


def require_note(note: str, *, name: str = "change_note") -> str:
    note = (note or "").strip()
    if not note:
        raise ValidationError({name: "A note saying why is required."})
    return note


def policy_version_publish(
    *, policy: EscalationPolicy, config: PolicyConfig, author: AbstractBaseUser | None, change_note: str
) -> PolicyVersion:
    """Publish `config` as a new immutable version and make it live (the previous versions stay as they are)."""
    note = require_note(change_note)
    _validated(config)
    with transaction.atomic():
        return _publish(
            policy=_locked(policy), config=config, author=author, change_note=note, action="policy_version.publish"
        )


def policy_version_rollback(
    *, policy: EscalationPolicy, version: PolicyVersion, author: AbstractBaseUser | None, note: str
) -> PolicyVersion:
    """Publish a copy of an earlier version as the newest version (history is never rewritten)."""
    if version.policy_id != policy.pk:
        raise ValidationError(f"Version {version.pk} belongs to another policy.")
    note = require_note(note, name="note")
    config = _validated(PolicyConfig.from_dict(version.config))
    with transaction.atomic():
        return _publish(
            policy=_locked(policy),
            config=config,
            author=author,
            change_note=note,
            action="policy_version.rollback" if not version.is_draft else "policy_version.publish_draft",
            extra={"copied_from_version": version.number},
        )


def policy_draft_save(
    *, policy: EscalationPolicy, config: PolicyConfig, author: AbstractBaseUser | None, change_note: str
) -> PolicyVersion:
    """Save a draft version: numbered and stored like any version, but never live until an admin publishes it."""
    _validated(config)
    with transaction.atomic():
        policy = _locked(policy)
        draft = PolicyVersion.objects.create(
            policy=policy,
            number=_next_number(policy),
            config=config.to_dict(),
            author=author,
            change_note=(change_note or "").strip(),
            published_at=None,
        )
        audit_record(
            actor=author,
            action="policy_version.draft_save",
            obj_type="routing.PolicyVersion",
            obj_id=draft.pk,
            data={"project": policy.project.slug, "number": draft.number, "after": draft.config},
        )
    return draft


def policy_preview(*, project: Project, config: PolicyConfig, last_n: int = 1000) -> dict[str, dict[str, int]]:
    """How the draft `config` and the live version would route the project's last `last_n` items right now."""
    _validated(config)
    live = PolicyConfig.from_dict(policy_for_project(project).live_version.config)
    counts = {"draft": Counter(), "live": Counter()}
    item_ids = selectors.latest_item_ids(project=project, last_n=last_n)
    for chunk in inputs.chunked(sorted(item_ids)):
        for loaded in inputs.route_inputs(item_ids=chunk):
            counts["draft"][evaluate(loaded.item_input, config, loaded.reliabilities).outcome.value] += 1
            counts["live"][evaluate(loaded.item_input, live, loaded.reliabilities).outcome.value] += 1
    return {side: {o.value: c[o.value] for o in Outcome} for side, c in counts.items()}


def live_config(project: Project, cache: dict[int, PolicyConfig] | None = None) -> PolicyConfig:
    if cache is not None and project.pk in cache:
        return cache[project.pk]
    config = PolicyConfig.from_dict(policy_for_project(project).live_version.config)
    if cache is not None:
        cache[project.pk] = config
    return config
