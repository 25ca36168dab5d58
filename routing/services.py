"""Writes for routing: policy versions, set-based routing of items, re-routes and label overrides."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from labeling.models import AuditEvent, FinalSource, Item, ItemStatus, Project
from labeling.services import audit_record
from routing import selectors
from routing.decision_inputs import inputs_to_dict
from routing.engine.policy import DEFAULT_POLICY, evaluate, inputs_digest, policy_errors
from routing.engine.types import AnnotatorReliability, Decision, Outcome, PolicyConfig, Stage
from routing.models import AnnotatorReliability as AnnotatorReliabilityRow
from routing.models import EscalationPolicy, PolicyVersion, RoutingDecision

OUTCOME_STATUS = {
    Outcome.ACCEPT: ItemStatus.LABELED,
    Outcome.CROWD: ItemStatus.IN_CROWD_REVIEW,
    Outcome.EXPERT: ItemStatus.ESCALATED,
}


# --- policies ---------------------------------------------------------------------------------------------


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


def _require_note(note: str, *, name: str = "change_note") -> str:
    note = (note or "").strip()
    if not note:
        raise ValidationError({name: "A note saying why is required."})
    return note


def policy_version_publish(
    *, policy: EscalationPolicy, config: PolicyConfig, author: AbstractBaseUser | None, change_note: str
) -> PolicyVersion:
    """Publish `config` as a new immutable version and make it live (the previous versions stay as they are)."""
    note = _require_note(change_note)
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
    note = _require_note(note, name="note")
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
    for chunk in selectors.chunked(sorted(item_ids)):
        for loaded in selectors.route_inputs(item_ids=chunk):
            counts["draft"][evaluate(loaded.item_input, config, loaded.reliabilities).outcome.value] += 1
            counts["live"][evaluate(loaded.item_input, live, loaded.reliabilities).outcome.value] += 1
    return {side: {o.value: c[o.value] for o in Outcome} for side, c in counts.items()}


# --- routing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResult:
    counts: Mapping[str, int]
    decisions: tuple[RoutingDecision, ...] = field(default_factory=tuple)


def _items_update(*, decisions: list[RoutingDecision], now) -> None:
    """Set the routed items' status and final label in three statements, whatever their number.

    Items sent to people lose any final label; accepted items take theirs from the decision just inserted
    (a correlated subquery), which avoids bulk_update's per-row CASE expressions.
    """
    by_outcome: dict[str, list[int]] = {o.value: [] for o in Outcome}
    for d in decisions:
        by_outcome[d.outcome].append(d.item_id)
    for outcome in (Outcome.CROWD, Outcome.EXPERT):
        if by_outcome[outcome]:
            Item.objects.filter(id__in=by_outcome[outcome]).update(
                status=OUTCOME_STATUS[outcome],
                final_label="",
                final_source="",
                final_confidence=None,
                labeled_at=None,
                updated_at=now,
            )
    if by_outcome[Outcome.ACCEPT]:
        latest = RoutingDecision.objects.filter(item=OuterRef("pk")).order_by("-id")
        Item.objects.filter(id__in=by_outcome[Outcome.ACCEPT]).update(
            status=ItemStatus.LABELED,
            final_label=Subquery(latest.values("final_label")[:1]),
            final_source=Subquery(latest.values("final_source")[:1]),
            final_confidence=Subquery(latest.values("confidence")[:1]),
            labeled_at=now,
            updated_at=now,
        )


def _apply_in_memory(item: Item, decision: Decision, now) -> None:
    """Mirror `_items_update` on the loaded row, so callers see the item as stored."""
    item.status = OUTCOME_STATUS[decision.outcome]
    accepted = decision.outcome == Outcome.ACCEPT
    item.final_label = decision.final_label if accepted else ""
    item.final_source = decision.final_source if accepted else ""
    item.final_confidence = decision.confidence if accepted else None
    item.labeled_at = now if accepted else None
    item.updated_at = now


def items_route(
    *,
    item_ids: Iterable[int],
    stage: Stage | str,
    actor: AbstractBaseUser | None = None,
    policy_version: PolicyVersion | None = None,
) -> RouteResult:
    """Route the items by their project's live policy version (or the given published one), set-based.

    Per chunk of CHUNK_SIZE items a fixed number of queries loads items, predictions, annotations and
    reliabilities; the engine then runs in memory, decisions are bulk-inserted and items updated in three
    statements.
    """
    stage = Stage(stage)
    if policy_version is not None and policy_version.is_draft:
        raise ValidationError("A draft policy version never routes items; publish it first.")
    ids = sorted(set(item_ids))
    counts: Counter[str] = Counter()
    created: list[RoutingDecision] = []
    now = timezone.now()
    versions: dict[int, PolicyVersion] = {}
    configs: dict[int, PolicyConfig] = {}
    with transaction.atomic():
        for chunk in selectors.chunked(ids):
            loaded = selectors.route_inputs(item_ids=chunk, lock=True)
            project_ids = {r.item.project_id for r in loaded}
            if policy_version is not None:
                foreign = project_ids - {policy_version.policy.project_id}
                if foreign:
                    raise ValidationError("The policy version given belongs to another project than some items.")
                versions.setdefault(policy_version.policy.project_id, policy_version)
            versions.update(selectors.live_versions(project_ids=project_ids - versions.keys()))
            for r in loaded:
                if r.item.project_id not in versions:
                    versions[r.item.project_id] = policy_for_project(r.item.project).live_version
            decisions = []
            for r in loaded:
                version = versions[r.item.project_id]
                if version.id not in configs:
                    configs[version.id] = PolicyConfig.from_dict(version.config)
                config = configs[version.id]
                decision = evaluate(r.item_input, config, r.reliabilities)
                decisions.append(_decision_row(r, decision, version, stage, actor, config))
                _apply_in_memory(r.item, decision, now)
                counts[decision.outcome.value] += 1
            created += RoutingDecision.objects.bulk_create(decisions)
            _items_update(decisions=decisions, now=now)
    return RouteResult(counts={o.value: counts[o.value] for o in Outcome}, decisions=tuple(created))


def _decision_row(
    loaded: selectors.RouteInput,
    decision: Decision,
    version: PolicyVersion,
    stage: Stage,
    actor: AbstractBaseUser | None,
    config: PolicyConfig,
) -> RoutingDecision:
    stored = decision.to_dict()
    return RoutingDecision(
        item=loaded.item,
        policy_version=version,
        stage=stage.value,
        inputs=inputs_to_dict(loaded.item_input, loaded.reliabilities),
        inputs_digest=inputs_digest(loaded.item_input, config, loaded.reliabilities),
        outcome=decision.outcome.value,
        final_label=decision.final_label,
        final_source=decision.final_source,
        confidence=decision.confidence,
        posterior=stored["posterior"],
        reasons=stored["reasons"],
        signals=stored["signals"],
        labels_requested=decision.labels_requested,
        actor=actor,
    )


def _item_state(item: Item) -> dict[str, Any]:
    return {
        "status": item.status,
        "final_label": item.final_label,
        "final_source": item.final_source,
        "final_confidence": item.final_confidence,
    }


def items_reroute(*, item_ids: Iterable[int], actor: AbstractBaseUser | None, note: str = "") -> RouteResult:
    """Route items again under their live policy (stage "reroute"), auditing each item's before and after."""
    ids = sorted(set(item_ids))
    with transaction.atomic():
        before = {}
        for chunk in selectors.chunked(ids):
            for item in Item.objects.filter(id__in=chunk).select_for_update().only(*_STATE_FIELDS):
                before[item.id] = _item_state(item)
        result = items_route(item_ids=ids, stage=Stage.REROUTE, actor=actor)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                actor=actor,
                action="item.reroute",
                object_type="labeling.Item",
                object_id=str(d.item_id),
                data={
                    "note": note,
                    "decision_id": d.id,
                    "policy_version": d.policy_version.number,
                    "before": before[d.item_id],
                    "after": _item_state(d.item),
                },
            )
            for d in result.decisions
        )
    return result


_STATE_FIELDS = ("id", "status", "final_label", "final_source", "final_confidence")


def item_reroute(*, item: Item, actor: AbstractBaseUser | None, note: str = "") -> RoutingDecision:
    """Re-route one item; returns the new decision."""
    return items_reroute(item_ids=[item.pk], actor=actor, note=note).decisions[0]


def item_final_label_override(*, item: Item, label: str, actor: AbstractBaseUser | None, reason: str) -> Item:
    """Set an item's final label by hand (source "expert"), recording who, why, and what it was before."""
    reason = _require_note(reason, name="reason")
    with transaction.atomic():
        item = Item.objects.select_for_update(of=("self",)).select_related("project").get(pk=item.pk)
        classes = item.project.class_names
        if label not in classes:
            raise ValidationError(
                {"label": f"{label!r} is not a class of project {item.project.slug}: {', '.join(classes)}"}
            )
        before = _item_state(item)
        now = timezone.now()
        item.final_label = label
        item.final_source = FinalSource.EXPERT
        item.final_confidence = None
        item.status = ItemStatus.LABELED
        item.labeled_at = now
        item.save(
            update_fields=["final_label", "final_source", "final_confidence", "status", "labeled_at", "updated_at"]
        )
        audit_record(
            actor=actor,
            action="item.final_label_override",
            obj_type="labeling.Item",
            obj_id=item.pk,
            data={"reason": reason, "before": before, "after": _item_state(item)},
        )
    return item


# --- reliabilities ----------------------------------------------------------------------------------------


def annotator_reliabilities_save(
    *, project: Project, reliabilities: Iterable[AnnotatorReliability]
) -> list[AnnotatorReliabilityRow]:
    """Store the project's current reliability estimates (one row per annotator, replaced in place)."""
    rows = [
        AnnotatorReliabilityRow(
            project=project,
            annotator_id=r.annotator_id,
            classes=list(project.class_names),
            confusion=[list(row) for row in r.confusion],
            n_observations=r.n_observations,
            updated_at=timezone.now(),
        )
        for r in reliabilities
    ]
    n = len(project.class_names)
    for row in rows:
        if len(row.confusion) != n or any(len(r) != n for r in row.confusion):
            raise ValidationError(
                f"annotator {row.annotator_id}: confusion must be {n}x{n} for {project.slug}'s classes"
            )
    with transaction.atomic():
        return AnnotatorReliabilityRow.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["project", "annotator"],
            update_fields=["classes", "confusion", "n_observations", "updated_at"],
        )
