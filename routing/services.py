"""Writes of routing: route items set-based by their project's live policy version and create the work the
decisions ask for (routing.offers), route them again by hand (re-route), and override a final label."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.utils import timezone

from core.audit import audit_record
from core.bulk import datetime_value, insert_objects, one_of, prepared_cursor
from core.models import AuditEvent
from labeling.models import (
    Annotation,
    FinalSource,
    Item,
    ItemStatus,
    Project,
)
from labeling.signals import CreatedItem
from routing import inputs
from routing.decision_inputs import inputs_to_dict
from routing.engine.policy import evaluate, stored_inputs_digest
from routing.engine.types import Decision, Outcome, PolicyConfig, Stage
from routing.fresh import fresh_route

# The assignment errors are part of this module's interface: callers catch services.AssignmentNotFound etc.
from routing.models import (
    Assignment,
    PolicyVersion,
    RoutingDecision,
)
from routing.offers import work_apply, work_plan
from routing.policies import policy_for_project, require_note

OUTCOME_STATUS = {
    Outcome.ACCEPT: ItemStatus.LABELED,
    Outcome.CROWD: ItemStatus.IN_CROWD_REVIEW,
    Outcome.EXPERT: ItemStatus.ESCALATED,
}


@dataclass(frozen=True)
class RouteResult:
    counts: Mapping[str, int]
    # In item id order. The batch path's are read back from the database when first looked at.
    decisions: Sequence[RoutingDecision] = field(default_factory=tuple)


class StoredDecisions(Sequence):
    """The decisions of a routing, in item id order: those the per-item path made as it made them, those the
    batch path wrote (by id) read back, with their item and version, the first time anyone looks."""

    def __init__(self, made: Sequence[RoutingDecision], written: Sequence[tuple[int, int]]) -> None:
        self._order: list[tuple[int, int | RoutingDecision]] = sorted(
            [*((d.item_id, d) for d in made), *written], key=lambda pair: pair[0]
        )
        self._loaded: list[RoutingDecision] | None = None if written else [d for _, d in self._order]

    def _all(self) -> list[RoutingDecision]:
        if self._loaded is None:
            ids = [d for _, d in self._order if isinstance(d, int)]
            found = RoutingDecision.objects.select_related("item", "policy_version").in_bulk(ids)
            self._loaded = [found[d] if isinstance(d, int) else d for _, d in self._order]
        return self._loaded

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index):
        return self._all()[index]


def _items_update(*, outcomes: Sequence[tuple[int, str, str, str, float | None]], now) -> None:
    """Set the routed items' status and final label, given (item id, outcome, final label, final source,
    confidence) per item, in at most three statements whatever their number (every submit runs this for
    its item): items sent to people lose any final label, accepted items take their decision's.

    On PostgreSQL the accepted items' values travel as arrays joined by unnest (one prepared statement
    text for any number). A correlated subquery on the decisions just inserted, as this used to do, was
    planned as a scan of the decision table per item once the prepared statement went generic: 12.6 s for
    11,000 accepted items (bench/ingest.py).
    """
    by_outcome: dict[str, list[int]] = {o.value: [] for o in Outcome}
    accepted: list[tuple[int, str, str, float | None]] = []
    for item_id, outcome, final_label, final_source, confidence in outcomes:
        by_outcome[outcome].append(item_id)
        if outcome == Outcome.ACCEPT:
            accepted.append((item_id, final_label, final_source, confidence))
    items = Item._meta.db_table
    stamp = datetime_value(now)
    with prepared_cursor(using=DEFAULT_DB_ALIAS) as cursor:
        for outcome in (Outcome.CROWD, Outcome.EXPERT):
            if by_outcome[outcome]:
                ids, params = one_of("id", by_outcome[outcome])
                cursor.execute(
                    f"UPDATE {items} SET status = %s, final_label = '', final_source = '', final_confidence = NULL,"
                    f" labeled_at = NULL, updated_at = %s WHERE {ids}",
                    [OUTCOME_STATUS[outcome].value, stamp, *params],
                )
        if not accepted:
            return
        labeled = ItemStatus.LABELED.value
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {items} SET status = %s, final_label = v.label, final_source = v.source,"
                f" final_confidence = v.confidence, labeled_at = %s, updated_at = %s"
                f" FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[]) AS v(id, label, source, confidence)"
                f" WHERE {items}.id = v.id",
                [labeled, stamp, stamp, *map(list, zip(*accepted))],
            )
        else:
            cursor.executemany(
                f"UPDATE {items} SET status = %s, final_label = %s, final_source = %s, final_confidence = %s,"
                f" labeled_at = %s, updated_at = %s WHERE id = %s",
                [(labeled, label, source, confidence, stamp, stamp, item_id)
                 for item_id, label, source, confidence in accepted],
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
    now: dt.datetime | None = None,
    locked_items: Sequence[Item] = (),
    created: Mapping[int, CreatedItem] | None = None,
) -> RouteResult:
    """Route the items by their project's live policy version (or the given published one), set-based,
    and create the work the decisions ask for (`work_plan`). `locked_items`: some of the items, already
    locked in the caller's transaction and loaded as selectors.routing_item_sql reads them (not read again).
    `created`: items the caller's transaction inserted, as ingest wrote them (the batch path takes their
    values from here instead of reading them back).

    Per chunk of CHUNK_SIZE items a fixed number of queries loads items, predictions, annotations and
    reliabilities; the engine then runs in memory, decisions are bulk-inserted and items updated in three
    statements, and assignments are cancelled and created in a few more. `now` (default: the clock) dates
    the assignments and their SLA deadlines and is the moment expert availability is judged at.
    """
    stage = Stage(stage)
    if policy_version is not None and policy_version.is_draft:
        raise ValidationError("A draft policy version never routes items; publish it first.")
    ids = sorted(set(item_ids))
    counts: Counter[str] = Counter()
    made: list[RoutingDecision] = []
    written: list[tuple[int, int]] = []
    now = now or timezone.now()
    versions: dict[int, PolicyVersion] = {}
    configs: dict[int, PolicyConfig] = {}

    def version_of(project: Project) -> PolicyVersion:
        if policy_version is not None:
            if project.pk != policy_version.policy.project_id:
                raise ValidationError("The policy version given belongs to another project than some items.")
            return policy_version
        if project.pk not in versions:
            versions[project.pk] = inputs.live_version_of(project) or policy_for_project(project).live_version
        return versions[project.pk]

    # No savepoint inside a caller's transaction (ingest, submit, reroute): each lets a failure here fail
    # it whole, and every submit would pay two more round trips for one.
    with transaction.atomic(savepoint=False):
        if stage == Stage.INGEST and not locked_items:
            # Fresh items, what ingest routes, take the batch path (routing.fresh); it hands back the rest.
            rest = []
            for chunk in inputs.chunked(ids):
                fresh = fresh_route(ids=chunk, stage=stage, actor_id=actor.pk if actor is not None else None,
                    version_of=version_of, configs=configs, now=now, created=created)
                if fresh.outcomes:
                    _items_update(outcomes=fresh.outcomes, now=now)
                written += fresh.routed
                counts.update(fresh.counts)
                rest += fresh.leftover
            ids = sorted(rest)
        for chunk in inputs.chunked(ids):
            loaded = inputs.route_inputs(item_ids=chunk, lock=True, locked_items=locked_items)
            decisions = []
            item_configs = []
            for r in loaded:
                version = version_of(r.item.project)
                if version.id not in configs:
                    configs[version.id] = inputs.version_config(version)
                config = configs[version.id]
                decision = evaluate(r.item_input, config, r.reliabilities)
                decisions.append(_decision_row(r, decision, version, stage, actor, config))
                item_configs.append(config)
                _apply_in_memory(r.item, decision, now)
                counts[decision.outcome.value] += 1
            # Planned before the insert: expert offers store their ranking on the decision row.
            plan = work_plan(loaded=loaded, rows=decisions, configs=item_configs, now=now)
            made += insert_objects(decisions)
            _items_update(outcomes=[(d.item_id, d.outcome, d.final_label, d.final_source, d.confidence)
                                    for d in decisions], now=now)
            work_apply(plan, now=now)
    return RouteResult(
        counts={o.value: counts[o.value] for o in Outcome},
        decisions=StoredDecisions(made, written) if written else tuple(made),
    )


def _decision_row(
    loaded: inputs.RouteInput,
    decision: Decision,
    version: PolicyVersion,
    stage: Stage,
    actor: AbstractBaseUser | None,
    config: PolicyConfig,
) -> RoutingDecision:
    stored = decision.to_dict()
    stored_inputs = inputs_to_dict(loaded.item_input, loaded.reliabilities)
    return RoutingDecision(
        item=loaded.item,
        policy_version=version,
        stage=stage.value,
        inputs=stored_inputs,
        inputs_digest=stored_inputs_digest(stored_inputs, config),
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
        for chunk in inputs.chunked(ids):
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
    reason = require_note(reason, name="reason")
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


def projects_purge(*, slugs: Iterable[str], actor: Any = None) -> int:
    """Delete whole projects with everything in them, decision trails and labels included, which a plain
    delete refuses (RoutingDecision.item and Annotation.item are PROTECT): for the demo's --reset and the
    benchmarks' clean-up, never for labeled data anyone keeps. Audited; how many projects went."""
    with transaction.atomic():
        projects = list(Project.objects.filter(slug__in=list(slugs)).values_list("pk", "slug"))
        ids = [pk for pk, _ in projects]
        Assignment.objects.filter(project_id__in=ids).delete()
        RoutingDecision.objects.filter(item__project_id__in=ids).delete()
        Annotation.objects.filter(item__project_id__in=ids).delete()
        Project.objects.filter(pk__in=ids).delete()
        for pk, slug in projects:
            audit_record(actor=actor, action="project.purge", obj_type="project", obj_id=pk, data={"slug": slug})
    return len(projects)
