"""Writes for routing: policy versions, set-based routing of items, re-routes and label overrides, and the
work routing creates: assignments offered, claimed, submitted, declined, reviewed, expired and reassigned
(docs/assignments.md), with the scheduled jobs that keep them moving."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone
from django_q.models import Schedule

from experts.availability import ExpertSnapshot, on_call
from experts.models import Domain, Expert, Role
from experts.ranking import Ranking, rank_experts
from experts.selectors import on_call_rotations
from experts.services import expert_accuracy_record
from labeling.bulk import columns, datetime_value, insert_objects, json_value, model_from_row, one_of, prepared_cursor
from labeling.models import (
    Annotation,
    AuditEvent,
    FinalSource,
    GoldLabel,
    Item,
    ItemStatus,
    Prediction,
    Project,
    Review,
    ReviewVerdict,
)
from labeling.services import audit_record
from routing import claim_sql, selectors
from routing.decision_inputs import inputs_to_dict
from routing.engine import aggregation
from routing.engine.policy import DEFAULT_POLICY, evaluate, inputs_digest, policy_errors
from routing.engine.temperature import temperature_changed
from routing.engine.types import AnnotatorReliability, Decision, Outcome, PolicyConfig, Stage

# The assignment errors are part of this module's interface: callers catch services.AssignmentNotFound etc.
from routing.exceptions import AssignmentConflict, AssignmentInvalid, AssignmentNotFound
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    EscalationPolicy,
    PolicyVersion,
    RoutingDecision,
)
from routing.models import AnnotatorReliability as AnnotatorReliabilityRow
from routing.simulation import reliability_learner

logger = logging.getLogger(__name__)

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
    """Set the routed items' status and final label in at most three prepared statements, whatever their
    number (every submit runs this for its item).

    Items sent to people lose any final label; accepted items take theirs from the decision just inserted
    (a correlated subquery), which avoids per-row CASE expressions.
    """
    by_outcome: dict[str, list[int]] = {o.value: [] for o in Outcome}
    for d in decisions:
        by_outcome[d.outcome].append(d.item_id)
    items, rd = Item._meta.db_table, RoutingDecision._meta.db_table
    stamp = datetime_value(now)
    with prepared_cursor() as cursor:
        for outcome in (Outcome.CROWD, Outcome.EXPERT):
            if by_outcome[outcome]:
                ids, params = one_of("id", by_outcome[outcome])
                cursor.execute(
                    f"UPDATE {items} SET status = %s, final_label = '', final_source = '', final_confidence = NULL,"
                    f" labeled_at = NULL, updated_at = %s WHERE {ids}",
                    [OUTCOME_STATUS[outcome].value, stamp, *params],
                )
        if by_outcome[Outcome.ACCEPT]:
            ids, params = one_of("id", by_outcome[Outcome.ACCEPT])
            latest = f"FROM {rd} d WHERE d.item_id = {items}.id ORDER BY d.id DESC LIMIT 1"
            cursor.execute(
                f"UPDATE {items} SET status = %s, final_label = (SELECT d.final_label {latest}),"
                f" final_source = (SELECT d.final_source {latest}), final_confidence = (SELECT d.confidence {latest}),"
                f" labeled_at = %s, updated_at = %s WHERE {ids}",
                [ItemStatus.LABELED.value, stamp, stamp, *params],
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
) -> RouteResult:
    """Route the items by their project's live policy version (or the given published one), set-based,
    and create the work the decisions ask for (`_work_plan`). `locked_items`: some of the items, already
    locked in the caller's transaction and loaded as selectors.routing_item_sql reads them (not read again).

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
    created: list[RoutingDecision] = []
    now = now or timezone.now()
    versions: dict[int, PolicyVersion] = {}
    configs: dict[int, PolicyConfig] = {}
    # No savepoint inside a caller's transaction (ingest, submit, reroute): each lets a failure here fail
    # it whole, and every submit would pay two more round trips for one.
    with transaction.atomic(savepoint=False):
        for chunk in selectors.chunked(ids):
            loaded = selectors.route_inputs(item_ids=chunk, lock=True, locked_items=locked_items)
            project_ids = {r.item.project_id for r in loaded}
            if policy_version is not None:
                foreign = project_ids - {policy_version.policy.project_id}
                if foreign:
                    raise ValidationError("The policy version given belongs to another project than some items.")
                versions.setdefault(policy_version.policy.project_id, policy_version)
            for r in loaded:
                if r.item.project_id not in versions:
                    live = selectors.live_version_of(r.item.project)
                    versions[r.item.project_id] = live or policy_for_project(r.item.project).live_version
            decisions = []
            item_configs = []
            for r in loaded:
                version = versions[r.item.project_id]
                if version.id not in configs:
                    configs[version.id] = PolicyConfig.from_dict(version.config)
                config = configs[version.id]
                decision = evaluate(r.item_input, config, r.reliabilities)
                decisions.append(_decision_row(r, decision, version, stage, actor, config))
                item_configs.append(config)
                _apply_in_memory(r.item, decision, now)
                counts[decision.outcome.value] += 1
            # Planned before the insert: expert offers store their ranking on the decision row.
            plan = _work_plan(loaded=loaded, rows=decisions, configs=item_configs, now=now)
            created += insert_objects(decisions)
            _items_update(decisions=decisions, now=now)
            _work_apply(plan, now=now)
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


# --- assignments: shared pieces ---------------------------------------------------------------------------

DEFAULT_LEASE_MINUTES = 30
# A claim retries this often when another claimer took the slot it picked between its read and its write.
CLAIM_ATTEMPTS = 8
# Reported time spent may exceed the time the server measured since the claim by this much (clock
# granularity, the network), not more.
TIME_SPENT_SLACK = dt.timedelta(minutes=2)
# Gold checks: the claimer's draw is a hash of (GOLD_SEED, user id, how many claims they made before), so
# who gets a gold check when is reproducible (gold_draw); the item is drawn among
# the first GOLD_CANDIDATES gold items (by id) they have not seen.
GOLD_SEED = 8_675_309
GOLD_CANDIDATES = 50
REVIEW_SAMPLE_SALT = "review-sample"
# Jobs handle at most this many assignments per run, so one run stays short; the next run takes the rest.
JOB_BATCH = 2000

ANNOTATION_ROLE = {
    AssignmentKind.CROWD: Role.CROWD,
    AssignmentKind.EXPERT: Role.EXPERT,
    AssignmentKind.REVIEW: Role.REVIEWER,
    AssignmentKind.GOLD_CHECK: Role.CROWD,
}
RATIONALE_KINDS = (AssignmentKind.EXPERT, AssignmentKind.REVIEW)
# Kinds routing manages on an item; reviews and gold checks have their own lives.
ROUTED_KINDS = (AssignmentKind.CROWD, AssignmentKind.EXPERT)


def assignment_lease() -> dt.timedelta:
    """settings.ASSIGNMENT_LEASE_MINUTES (default 30), read at call time so tests and deployments can change it."""
    return dt.timedelta(minutes=float(getattr(settings, "ASSIGNMENT_LEASE_MINUTES", DEFAULT_LEASE_MINUTES)))


def unit_hash(*parts: Any) -> float:
    """A reproducible number in [0, 1) from `parts` (Python's hash() of a str changes per process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def review_sampled(*, item_id: int, rate: float) -> bool:
    """Whether a labeled item falls in the project's review sample: a fixed draw per item, so re-routing
    never samples it twice and a replay samples the same items."""
    return rate > 0 and unit_hash(REVIEW_SAMPLE_SALT, item_id) < rate


def _live_config(project: Project, cache: dict[int, PolicyConfig] | None = None) -> PolicyConfig:
    if cache is not None and project.pk in cache:
        return cache[project.pk]
    config = PolicyConfig.from_dict(policy_for_project(project).live_version.config)
    if cache is not None:
        cache[project.pk] = config
    return config


class _Roster:
    """One snapshot of the expert roster for a batch of offers; each offer counts towards its expert's load,
    so a batch spreads work instead of piling it on whoever ranked first."""

    def __init__(self, snapshots: Iterable[ExpertSnapshot]):
        self._by_id = {s.expert_id: s for s in snapshots}

    @classmethod
    def load(cls) -> _Roster:
        return cls(selectors.roster_for_ranking())

    @property
    def snapshots(self) -> list[ExpertSnapshot]:
        return list(self._by_id.values())

    def rank(
        self,
        *,
        item: Item,
        now: dt.datetime,
        due_at: dt.datetime,
        already_labeled_by: Iterable[int] = (),
        exclude_user_ids: Iterable[int] = (),
    ) -> Ranking:
        return rank_experts(
            self._by_id.values(),
            domain=item.domain.path if item.domain_id else "",
            language=item.language,
            now=now,
            sla_deadline=due_at,
            already_labeled_by=frozenset(already_labeled_by),
            exclude_user_ids=frozenset(exclude_user_ids),
        )

    def took(self, expert_id: int) -> None:
        snapshot = self._by_id[expert_id]
        self._by_id[expert_id] = dataclasses.replace(snapshot, open_assignments=snapshot.open_assignments + 1)


def _exclusions(item_ids: Sequence[int]) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """For expert offers on these items (two queries): who may not be offered one again (declined it, let
    a lease on it expire, or holds an open slot on it), and who already labeled it."""
    excluded: dict[int, set[int]] = defaultdict(set)
    labeled: dict[int, set[int]] = defaultdict(set)
    if not item_ids:
        return excluded, labeled
    rows = Assignment.objects.filter(item_id__in=item_ids, assignee__isnull=False).filter(
        Q(kind=AssignmentKind.EXPERT, status__in=[AssignmentStatus.DECLINED, AssignmentStatus.EXPIRED])
        | Q(status__in=OPEN_ASSIGNMENT_STATUSES)
    )
    for item_id, user_id in rows.values_list("item_id", "assignee_id"):
        excluded[item_id].add(user_id)
    for item_id, user_id in Annotation.objects.filter(item_id__in=item_ids).values_list("item_id", "annotator_id"):
        labeled[item_id].add(user_id)
    return excluded, labeled


def _email_on_commit(messages: Mapping[int, tuple[str, str]], *, respect_preference: bool = True) -> None:
    """Email users (user id -> (subject, body)) once the transaction commits, so a rolled-back offer sends
    nothing. Skips users without an address, and (unless told otherwise) those who turned emails off."""
    if not messages:
        return
    experts = Expert.objects.filter(user_id__in=list(messages)).select_related("user")
    if respect_preference:
        experts = experts.filter(email_notifications=True)
    outbox = [(e.user.email, *messages[e.user_id]) for e in experts if e.user.email]

    def send() -> None:
        for address, subject, body in outbox:
            try:
                send_mail(subject, body, None, [address])
            except Exception:
                # A mail server outage must not undo work already committed; the queue page still shows it.
                logger.exception("could not email %s", address)

    if outbox:
        transaction.on_commit(send)


def _offer_emails(slots: Iterable[Assignment]) -> dict[int, tuple[str, str]]:
    by_user: dict[int, list[Assignment]] = defaultdict(list)
    for slot in slots:
        offered_to_expert = slot.kind == AssignmentKind.EXPERT and slot.status == AssignmentStatus.OFFERED
        if slot.assignee_id is not None and offered_to_expert:
            by_user[slot.assignee_id].append(slot)
    messages = {}
    for user_id, offered in by_user.items():
        due = min(s.due_at for s in offered if s.due_at is not None)
        n = len(offered)
        messages[user_id] = (
            f"{n} new expert assignment{'s' if n != 1 else ''} for you",
            (
                f"You have been offered {n} item{'s' if n != 1 else ''} to label; the first is due by "
                f"{due:%Y-%m-%d %H:%M} UTC. Open your queue in the labeling workbench to start."
            ),
        )
    return messages


# --- assignments: what routing creates --------------------------------------------------------------------


@dataclass
class WorkPlan:
    """What one chunk's decisions do to assignments: slots to cancel and slots to create."""

    cancel: list[int] = field(default_factory=list)  # whatever their state, if still open
    withdraw: list[int] = field(default_factory=list)  # only if nobody has started them meanwhile
    # (decision row, kind, assignee user id or None, due_at); the row is saved before the slots are.
    create: list[tuple[RoutingDecision, str, int | None, dt.datetime]] = field(default_factory=list)


def _work_plan(
    *, loaded: Sequence[selectors.RouteInput], rows: Sequence[RoutingDecision], configs: Sequence[PolicyConfig], now
) -> WorkPlan:
    """Decide the work for one chunk of decisions, in a fixed number of queries:

    * ACCEPT cancels the item's open crowd and expert slots, and asks a reviewer to look when an expert's
      label was accepted or the item falls in the project's review sample (once per item);
    * CROWD keeps `labels_requested` crowd slots open (creating the missing ones) and withdraws offered
      expert and review slots;
    * EXPERT withdraws offered crowd and review slots and, unless an expert slot is already open, ranks the
      roster (one snapshot per chunk, loads counted as offers are made), stores the ranking on the decision
      and offers the slot to the best expert, or leaves it unassigned in the experts' queue when nobody is
      eligible. Someone who declined or let a lease on the item expire is not offered it again.

    Active slots of a kind no longer wanted are left to finish: their label still counts.
    """
    plan = WorkPlan()
    if not rows:
        return plan
    open_slots = {r.item.id: r.open_slots for r in loaded}
    reviewed = {r.item.id for r in loaded if r.reviewed}
    wanting_expert = [
        row.item_id
        for row in rows
        if row.outcome == Outcome.EXPERT and not any(k == AssignmentKind.EXPERT for _, k, _ in open_slots[row.item_id])
    ]
    roster = _Roster.load() if wanting_expert else None
    excluded, _ = _exclusions(wanting_expert)

    for r, row, config in zip(loaded, rows, configs):
        slots = open_slots[row.item_id]
        due_at = now + dt.timedelta(hours=config.sla_hours)
        if row.outcome == Outcome.ACCEPT:
            plan.cancel += [slot_id for slot_id, kind, _ in slots if kind in ROUTED_KINDS]
            wants_review = row.final_source == FinalSource.EXPERT or review_sampled(
                item_id=row.item_id, rate=r.item.project.review_sample_rate
            )
            if wants_review and row.item_id not in reviewed:
                plan.create.append((row, AssignmentKind.REVIEW, None, due_at))
            continue
        unwanted = (AssignmentKind.EXPERT, AssignmentKind.REVIEW) if row.outcome == Outcome.CROWD else (
            AssignmentKind.CROWD,
            AssignmentKind.REVIEW,
        )
        plan.withdraw += [
            slot_id for slot_id, kind, status in slots if kind in unwanted and status == AssignmentStatus.OFFERED
        ]
        if row.outcome == Outcome.CROWD:
            have = sum(1 for _, kind, _ in slots if kind == AssignmentKind.CROWD)
            plan.create += [(row, AssignmentKind.CROWD, None, due_at)] * max(0, row.labels_requested - have)
        elif row.item_id in wanting_expert:
            assert roster is not None
            ranking = roster.rank(
                item=r.item,
                now=now,
                due_at=due_at,
                already_labeled_by={a.annotator_id for a in r.item_input.annotations},
                exclude_user_ids=excluded[row.item_id],
            )
            row.expert_ranking = ranking.to_dict()
            best = ranking.best
            if best is not None:
                roster.took(best.expert_id)
            plan.create.append((row, AssignmentKind.EXPERT, best.user_id if best else None, due_at))
    return plan


def _work_apply(plan: WorkPlan, *, now: dt.datetime) -> list[Assignment]:
    """Carry out a plan once its decision rows are saved: one update for the slots to cancel, one for those
    to withdraw, one insert for the new ones, offer emails on commit."""
    # Prepared statements: an accepted label cancels its item's other slots on many a submit. A slot to
    # withdraw that someone claimed since the plan read it stays theirs.
    for slot_ids, statuses in ((plan.cancel, OPEN_ASSIGNMENT_STATUSES), (plan.withdraw, (AssignmentStatus.OFFERED,))):
        if not slot_ids:
            continue
        of_slots, params = one_of("id", sorted(slot_ids))
        listed = "', '".join(s.value for s in statuses)
        with prepared_cursor() as cursor:
            cursor.execute(
                f"UPDATE {Assignment._meta.db_table}"
                f" SET status = '{AssignmentStatus.CANCELLED.value}', completed_at = %s"
                f" WHERE {of_slots} AND status IN ('{listed}')",
                [datetime_value(now), *params],
            )
    if not plan.create:  # most submits: the item's slots are already right
        return []
    slots = insert_objects([
        Assignment(
            item_id=row.item_id,
            project_id=row.item.project_id,
            decision=row,
            kind=kind,
            assignee_id=assignee_id,
            status=AssignmentStatus.OFFERED,
            due_at=due_at,
            created_at=now,
        )
        for row, kind, assignee_id, due_at in plan.create
    ])
    _email_on_commit(_offer_emails(slots))
    return slots


def _replacements(
    slots: Sequence[Assignment], *, now: dt.datetime, roster: _Roster | None = None
) -> tuple[list[Assignment], dict[int, Ranking]]:
    """Fresh slots taking over from `slots` (expired or declined, already saved as such), unsaved: the same
    item, kind, decision and SLA deadline. Crowd and review slots return to their queue; expert slots are
    offered to the next best expert (the ranking excludes everyone who declined the item or let it expire,
    and whoever labeled it), or wait unassigned. Gold checks are not replaced: they were drawn for one person.
    A crowd slot is not replaced once its item has left crowd review (escalated or labeled meanwhile): its
    label is no longer asked for. Returns the slots and, by old slot id, the rankings made."""
    slots = [
        s for s in slots if s.kind != AssignmentKind.CROWD or s.item.status == ItemStatus.IN_CROWD_REVIEW
    ]
    expert_items = [s.item_id for s in slots if s.kind == AssignmentKind.EXPERT]
    if expert_items and roster is None:
        roster = _Roster.load()
    excluded, labeled = _exclusions(expert_items)
    fresh: list[Assignment] = []
    rankings: dict[int, Ranking] = {}
    for old in slots:
        if old.kind == AssignmentKind.GOLD_CHECK:
            continue
        assignee_id = None
        if old.kind == AssignmentKind.EXPERT:
            assert roster is not None
            due_at = old.due_at or now
            ranking = roster.rank(
                item=old.item,
                now=now,
                due_at=due_at,
                already_labeled_by=labeled[old.item_id],
                exclude_user_ids=excluded[old.item_id] | {old.assignee_id},
            )
            rankings[old.pk] = ranking
            if ranking.best is not None:
                assignee_id = ranking.best.user_id
                roster.took(ranking.best.expert_id)
                # The same person is not offered two slots of one item in this batch.
                excluded[old.item_id].add(assignee_id)
        fresh.append(_successor(old, assignee_id=assignee_id, now=now))
    return fresh, rankings


def _successor(old: Assignment, *, assignee_id: int | None, now: dt.datetime) -> Assignment:
    """An unsaved slot taking over from `old`: the same item, kind, decision and SLA deadline, offered anew."""
    return Assignment(
        item_id=old.item_id,
        project_id=old.project_id,
        kind=old.kind,
        decision_id=old.decision_id,
        assignee_id=assignee_id,
        status=AssignmentStatus.OFFERED,
        due_at=old.due_at,
        created_at=now,
    )


def _ranking_summary(ranking: Ranking | None) -> dict[str, Any]:
    if ranking is None:
        return {}
    best = ranking.best
    return {
        "offered_to": best.user_id if best else None,
        "explanation": ranking.explanation,
        "candidates": [c.user_id for c in ranking.candidates],
    }


# --- assignments: claim, submit, decline, review -----------------------------------------------------------


def _take(slot_id: int, *, user: Any, now: dt.datetime, lease_end: dt.datetime) -> bool:
    """Compare-and-set: the slot becomes the user's active assignment only if it is still offered, to
    nobody or to them; False when someone else got there first. (If the user already holds another slot of
    the item, the unique constraint aborts the transaction; the caller retries.) Hand-written like
    selectors.next_queued_slot, because every claim runs it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Assignment._meta.db_table} SET status = %s, assignee_id = %s, claimed_at = %s,"
            " lease_expires_at = %s WHERE id = %s AND status = %s AND (assignee_id IS NULL OR assignee_id = %s)",
            [
                AssignmentStatus.ACTIVE.value,
                user.pk,
                connection.ops.adapt_datetimefield_value(now),
                connection.ops.adapt_datetimefield_value(lease_end),
                slot_id,
                AssignmentStatus.OFFERED.value,
                user.pk,
            ],
        )
        return cursor.rowcount == 1


def gold_draw(*, user_id: int, sequence: int) -> float:
    """The number in [0, 1) a crowd claim compares with its project's gold_check_rate (a gold check is due
    below it), `sequence` being how many claims the user made before (Expert.claims_made): a hash of
    (GOLD_SEED, user, sequence), so the draws are reproducible and independent from one claim to the next."""
    return unit_hash(GOLD_SEED, user_id, sequence)


def _gold_check(
    *,
    user: Any,
    slot: selectors.QueuedSlot,
    sequence: int,
    now: dt.datetime,
    lease_end: dt.datetime,
    candidates: Sequence[int] | None = None,
) -> Assignment | None:
    """A gold check in the slot's project for the user instead of the slot: one of the `candidates` (default:
    selectors.unseen_gold_items), handed out like any crowd work; None when there is no such item."""
    if candidates is None:
        candidates = selectors.unseen_gold_items(user=user, project_id=slot.project_id, limit=GOLD_CANDIDATES)
    if not candidates:
        return None
    pick = int(unit_hash(GOLD_SEED, user.pk, sequence, "pick") * len(candidates))
    return Assignment.objects.create(
        item_id=candidates[pick],
        project_id=slot.project_id,
        assignee_id=user.pk,
        kind=AssignmentKind.GOLD_CHECK,
        status=AssignmentStatus.ACTIVE,
        claimed_at=now,
        lease_expires_at=lease_end,
        due_at=slot.due_at or now,
        created_at=now,
    )


_RETRY = object()


def _claim_offered(*, user: Any, project: Project | None, now: dt.datetime, lease_end: dt.datetime) -> Any:
    """The first slot offered to the user by name, claimed (its id); None when there is none."""
    own = selectors.offered_to(user=user, project=project).select_for_update(skip_locked=True, of=("self",))
    slot_id = own.values_list("id", flat=True).first()
    if slot_id is None:
        return None
    return slot_id if _take(slot_id, user=user, now=now, lease_end=lease_end) else _RETRY


def _claim_from_queue_slowly(
    *,
    user: Any,
    worker: selectors.Worker,
    project: Project | None,
    now: dt.datetime,
    lease_end: dt.datetime,
    draw: float | None,
) -> Any:
    """The claim step by step, for when the one-statement claim took nothing: finds out why (capacity, an
    empty queue, every candidate locked by others) and acts on it. Runs inside a transaction."""
    if selectors.open_assignment_count(user=user) >= worker.capacity:
        return None
    slot = selectors.next_queued_slot(user=user, worker=worker, project=project, lock=True)
    if slot is None:
        return None
    if draw is not None and slot.kind == AssignmentKind.CROWD and draw < slot.gold_check_rate:
        gold = _gold_check(user=user, slot=slot, sequence=worker.claims_made, now=now, lease_end=lease_end)
        if gold is not None:
            return gold.pk
    if _take(slot.id, user=user, now=now, lease_end=lease_end):
        return slot.id
    return _RETRY


def _savepoint_if_nested(run: Callable[[], Any]) -> Any:
    """Run a one-statement claim; inside someone else's transaction (a test, a batch) with a savepoint, so
    a unique-constraint race does not spoil that transaction. On its own it needs none."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return run()
    return run()


def assignment_claim_next(*, user: Any, project: Project | None = None,
    now: dt.datetime | None = None) -> Assignment | None:
    """Claim the user's next assignment (in `project`, or any) and start its lease; None when there is none.

    Order: slots offered to the user by name, soonest deadline first; then unassigned slots of their role's
    queue they may take (selectors.claimable_slots), soonest deadline first, while they hold fewer open
    assignments than their capacity. A crowd claim is sometimes a hidden gold check instead (gold_draw).
    Exclusive under concurrency: PostgreSQL skips rows other claimers have locked, and on every database
    the write is a compare-and-set that only succeeds on a still-free slot (else: try again).

    A crowd claim is normally ONE statement on PostgreSQL (claim_sql.crowd_claim: the roster entry read and
    its claim counter bumped, the head of the queue taken, the item returned) and no transaction; SQLite
    runs the same steps as three statements. Only when that takes nothing does the claim go step by step
    (_claim_from_queue_slowly), and only when a gold check is due does it hand the slot back.
    """
    now = now or timezone.now()
    lease_end = now + assignment_lease()
    try:
        worker, claimed = _savepoint_if_nested(
            lambda: claim_sql.crowd_claim(user=user, project=project, now=now, lease_end=lease_end)
        )
    except IntegrityError:
        # The user claimed another slot of the same item at the same moment (two tabs): go step by step.
        worker, claimed = claim_sql.claimer_after_conflict(user), None
    if worker is not None and worker.role == Role.CROWD:
        draw = gold_draw(user_id=user.pk, sequence=worker.claims_made)
        if claimed is not None:
            return _gold_instead(claimed, user=user, worker=worker, draw=draw, now=now, lease_end=lease_end)
        return _claim_from_queue(user=user, worker=worker, project=project, now=now, lease_end=lease_end, draw=draw)
    # Slots are offered by name only to experts (routing, declines, expiry, SLA breaches, the waiting queue).
    for _ in range(CLAIM_ATTEMPTS):
        with transaction.atomic():
            taken = _claim_offered(user=user, project=project, now=now, lease_end=lease_end)
        if taken is None:
            break
        if taken is not _RETRY:
            return _with_item(Assignment.objects.get(pk=taken), project)
    if worker is None:
        return None
    return _claim_from_queue(user=user, worker=worker, project=project, now=now, lease_end=lease_end, draw=None)


def _claim_from_queue(
    *,
    user: Any,
    worker: selectors.Worker,
    project: Project | None,
    now: dt.datetime,
    lease_end: dt.datetime,
    draw: float | None,
) -> Assignment | None:
    """The head of the worker's queue: in one statement (claim_sql.queue_claim) or, when that takes nothing,
    step by step; retried when another claimer got there first."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            claimed = _savepoint_if_nested(
                lambda: claim_sql.queue_claim(user=user, worker=worker, project=project, now=now, lease_end=lease_end)
            )
            if claimed is not None:
                if draw is None:
                    return claimed.assignment
                return _gold_instead(claimed, user=user, worker=worker, draw=draw, now=now, lease_end=lease_end)
            with transaction.atomic():
                taken = _claim_from_queue_slowly(
                    user=user, worker=worker, project=project, now=now, lease_end=lease_end, draw=draw
                )
        except IntegrityError:
            # The user claimed another slot of the same item at the same moment (two tabs): try again.
            continue
        if taken is None:
            return None
        if taken is not _RETRY:
            return _with_item(Assignment.objects.get(pk=taken), project)
    return None


def _gold_instead(
    claimed: claim_sql.Claimed,
    *,
    user: Any,
    worker: selectors.Worker,
    draw: float,
    now: dt.datetime,
    lease_end: dt.datetime,
) -> Assignment:
    """The claimed crowd slot, or, when the draw falls under its project's gold_check_rate and the project
    has a gold item the person has not seen, a gold check instead: the slot goes back to its queue."""
    slot = claimed.assignment
    if slot.kind != AssignmentKind.CROWD or draw >= claimed.gold_check_rate:
        return slot
    queued = selectors.QueuedSlot(
        id=slot.pk, kind=slot.kind, project_id=slot.project_id, due_at=slot.due_at,
        gold_check_rate=claimed.gold_check_rate
    )
    # Looked for while the person still holds the slot, so the gold item is never the slot's own item.
    candidates = selectors.unseen_gold_items(user=user, project_id=slot.project_id, limit=GOLD_CANDIDATES)
    if not candidates:
        return slot
    try:
        with transaction.atomic():
            gold = _gold_check(
                user=user, slot=queued, sequence=worker.claims_made, now=now, lease_end=lease_end, candidates=candidates
            )
            Assignment.objects.filter(pk=slot.pk, assignee_id=user.pk, status=AssignmentStatus.ACTIVE).update(
                status=AssignmentStatus.OFFERED, assignee=None, claimed_at=None, lease_expires_at=None
            )
    except IntegrityError:
        # Their other tab took a slot of the gold item meanwhile: they keep the slot they claimed.
        return slot
    return _with_item(gold, slot.item.project)


def _with_item(assignment: Assignment, project: Project | None) -> Assignment:
    """The claimed assignment with its item, the item's domain and project loaded (the caller's project
    object when it is the item's)."""
    same = project is not None and project.pk == assignment.project_id
    assignment.item = selectors.item_for_work(item_id=assignment.item_id, project=project if same else None)
    return assignment


def _lock_own(*, assignment_id: Any, user: Any) -> Assignment:
    """The user's assignment, locked, after its item (selectors.assignment_locked); anyone else's raises
    AssignmentNotFound exactly like an id that does not exist."""
    try:
        assignment_id = int(assignment_id)
    except (TypeError, ValueError):
        raise AssignmentNotFound(f"No assignment {assignment_id!r} of yours.") from None
    if not 0 < assignment_id < 2**63:  # ids are positive 64-bit integers; anything else is nobody's
        raise AssignmentNotFound(f"No assignment {assignment_id} of yours.")
    assignment = selectors.assignment_locked(assignment_id=assignment_id, user_id=user.pk)
    if assignment is None:
        raise AssignmentNotFound(f"No assignment {assignment_id} of yours.")
    return assignment


def _require_open(assignment: Assignment, now: dt.datetime) -> None:
    if assignment.status == AssignmentStatus.ACTIVE:
        if assignment.lease_expires_at is not None and assignment.lease_expires_at <= now:
            raise AssignmentConflict(
                f"The lease on assignment {assignment.pk} expired at "
                f"{assignment.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        return
    if assignment.status != AssignmentStatus.OFFERED:
        raise AssignmentConflict(f"Assignment {assignment.pk} is {assignment.get_status_display().lower()}.")


def _whole(value: Any) -> int | None:
    """An int from an int or a whole-number string; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def submission_errors(
    *,
    assignment: Assignment,
    label: Any,
    rationale: Any,
    factors: Any,
    confidence: Any,
    time_spent_ms: Any,
    now: dt.datetime,
) -> dict[str, list[str]]:
    """Everything wrong with a submission, by field (empty when it can be stored)."""
    project = assignment.item.project
    errors: dict[str, list[str]] = defaultdict(list)
    classes = project.class_names
    if not isinstance(label, str) or label not in classes:
        errors["label"].append(f"{label!r} is not a class of {project.slug}; use one of: {', '.join(classes)}.")
    if not isinstance(rationale, str):
        errors["rationale"].append("Give the rationale as text.")
    elif not rationale.strip() and (assignment.kind in RATIONALE_KINDS or project.rationale_required):
        errors["rationale"].append("A rationale is required for this item: say briefly why this label.")
    if not isinstance(factors, (list, tuple)) or not all(isinstance(f, str) for f in factors):
        errors["factors"].append("Give the decision factors as a list of names.")
    else:
        unknown = [f for f in factors if f not in (project.decision_factors or ())]
        if unknown:
            allowed = ", ".join(project.decision_factors or ()) or "none"
            errors["factors"].append(f"Unknown decision factor(s) {', '.join(map(repr, unknown))}; allowed: {allowed}.")
    if confidence is not None and confidence != "":
        value = _whole(confidence)
        if value is None or not 1 <= value <= 5:
            errors["confidence"].append(f"Confidence is a whole number from 1 to 5, not {confidence!r}.")
    if time_spent_ms is not None and time_spent_ms != "":
        value = _whole(time_spent_ms)
        started = assignment.claimed_at or assignment.created_at
        cap_ms = int(((now - started) + TIME_SPENT_SLACK) / dt.timedelta(milliseconds=1))
        if value is None or value < 0:
            errors["time_spent_ms"].append(f"Time spent is a whole number of milliseconds >= 0, not {time_spent_ms!r}.")
        elif value > cap_ms:
            errors["time_spent_ms"].append(
                f"Time spent {value} ms is more than the {cap_ms} ms since the assignment was claimed."
            )
    return dict(errors)


def assignment_submit(
    *,
    assignment_id: int,
    user: Any,
    label: str,
    rationale: str = "",
    factors: Sequence[str] = (),
    confidence: int | None = None,
    time_spent_ms: int | None = None,
    unsure: bool = False,
    started_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Annotation:
    """Record the user's label for their assignment, complete it, and route the item again at once.

    Raises AssignmentNotFound (not theirs, or no such id), AssignmentConflict (expired, completed, declined,
    cancelled, or the lease ran out), AssignmentInvalid (errors by field); nothing changes then. The
    annotation's role follows the kind (a gold check is crowd work). A gold check does not re-route its
    item: it only measures the annotator (accuracy_refresh reads it). The returned annotation's `item`
    shows the item as routing left it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own(assignment_id=assignment_id, user=user)
        _require_open(assignment, now)
        rationale = "" if rationale is None else rationale
        factors = [] if factors is None else factors
        errors = submission_errors(
            assignment=assignment,
            label=label,
            rationale=rationale,
            factors=factors,
            confidence=confidence,
            time_spent_ms=time_spent_ms,
            now=now,
        )
        if errors:
            raise AssignmentInvalid(errors)
        item = assignment.item
        claimed_at = assignment.claimed_at or now
        annotation = _annotation_complete(
            assignment=assignment,
            values={
                "item_id": item.pk,
                "annotator_id": user.pk,
                "label": label,
                "rationale": rationale.strip(),
                "factors": json_value(list(factors)),
                "confidence": _whole(confidence) if confidence not in (None, "") else None,
                "unsure": bool(unsure),
                "time_spent_ms": _whole(time_spent_ms) if time_spent_ms not in (None, "") else None,
                "started_at": datetime_value(started_at or claimed_at),
                "submitted_at": datetime_value(now),
                "role": ANNOTATION_ROLE[AssignmentKind(assignment.kind)].value,
            },
            claimed_at=claimed_at,
            now=now,
        )
        annotation.item = item
        if assignment.kind != AssignmentKind.GOLD_CHECK:
            routed = items_route(item_ids=[item.pk], stage=Stage.ANNOTATION, actor=user, now=now, locked_items=[item])
            annotation.item = routed.decisions[0].item
    return annotation


def _annotation_complete(
    *, assignment: Assignment, values: Mapping[str, Any], claimed_at: dt.datetime, now: dt.datetime
) -> Annotation:
    """Store the annotation (`values`: its columns, in database form) and complete the assignment with it:
    one prepared statement on PostgreSQL (a data-modifying CTE), two elsewhere, as every submit runs them."""
    annotations, assignments = Annotation._meta.db_table, Assignment._meta.db_table
    insert = (
        f"INSERT INTO {annotations} ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})"
        f" RETURNING {columns(Annotation)}"
    )
    complete = (
        f"UPDATE {assignments} SET status = '{AssignmentStatus.COMPLETED.value}', annotation_id = {{annotation}},"
        " claimed_at = %s, completed_at = %s WHERE id = %s"
    )
    completion = [datetime_value(claimed_at), datetime_value(now), assignment.pk]
    with prepared_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH n AS ({insert}), done AS ({complete.format(annotation='(SELECT id FROM n)')}) SELECT * FROM n",
                [*values.values(), *completion],
            )
            return model_from_row(Annotation, cursor.fetchone())
        cursor.execute(insert, list(values.values()))
        annotation = model_from_row(Annotation, cursor.fetchone())
        cursor.execute(complete.format(annotation="%s"), [annotation.pk, *completion])
    return annotation


def assignment_decline(*, assignment_id: int, user: Any, reason: str, now: dt.datetime | None = None) -> Assignment:
    """Hand an open assignment back, saying why: an expert slot goes to the next best expert (or waits in
    the experts' queue), a crowd or review slot returns to its queue, a gold check simply ends. Audited."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own(assignment_id=assignment_id, user=user)
        if assignment.status not in OPEN_ASSIGNMENT_STATUSES:
            raise AssignmentConflict(f"Assignment {assignment.pk} is {assignment.get_status_display().lower()}.")
        reason = (reason or "").strip() if isinstance(reason, str) else ""
        if not reason:
            raise AssignmentInvalid({"reason": ["Say why you decline (e.g. outside my expertise)."]})
        assignment.status = AssignmentStatus.DECLINED
        assignment.decline_reason = reason
        assignment.completed_at = now
        assignment.save(update_fields=["status", "decline_reason", "completed_at"])
        fresh, rankings = _replacements([assignment], now=now)
        fresh = Assignment.objects.bulk_create(fresh)
        audit_record(
            actor=user,
            action="assignment.decline",
            obj_type="routing.Assignment",
            obj_id=assignment.pk,
            data={
                "item_id": assignment.item_id,
                "kind": assignment.kind,
                "reason": reason,
                "replacement_id": fresh[0].pk if fresh else None,
                **_ranking_summary(rankings.get(assignment.pk)),
            },
        )
        _email_on_commit(_offer_emails(fresh))
    return assignment


def review_submit(
    *,
    assignment_id: int,
    user: Any,
    verdict: str,
    label: str = "",
    reason: str = "",
    now: dt.datetime | None = None,
) -> Review:
    """A reviewer's verdict on an item's final label: "agree" keeps it, "override" replaces it (label and
    reason required) through item_final_label_override, which audits the change. Completes the review."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own(assignment_id=assignment_id, user=user)
        _require_open(assignment, now)
        if assignment.kind != AssignmentKind.REVIEW:
            raise AssignmentInvalid({"verdict": [f"Assignment {assignment.pk} is not a review."]})
        item = assignment.item
        if not item.final_label:
            raise AssignmentConflict(f"Item {item.external_id} has no final label to review any more.")
        errors: dict[str, list[str]] = defaultdict(list)
        reason = (reason or "").strip()
        label = (label or "").strip()
        if verdict not in ReviewVerdict.values:
            errors["verdict"].append(f"Verdict is one of: {', '.join(ReviewVerdict.values)}; not {verdict!r}.")
        elif verdict == ReviewVerdict.OVERRIDE:
            classes = item.project.class_names
            if label not in classes:
                errors["label"].append(
                    f"{label!r} is not a class of {item.project.slug}; use one of: {', '.join(classes)}.")
            elif label == item.final_label:
                errors["label"].append(f"{label!r} is the current label; to keep it, agree instead.")
            if not reason:
                errors["reason"].append("Say why the label is wrong.")
        if errors:
            raise AssignmentInvalid(dict(errors))
        previous = item.final_label
        if verdict == ReviewVerdict.OVERRIDE:
            item_final_label_override(item=item, label=label, actor=user, reason=reason)
        review = Review.objects.create(
            item=item,
            reviewer_id=user.pk,
            verdict=verdict,
            previous_label=previous,
            label=label if verdict == ReviewVerdict.OVERRIDE else previous,
            reason=reason,
        )
        Assignment.objects.filter(pk=assignment.pk).update(
            status=AssignmentStatus.COMPLETED, claimed_at=assignment.claimed_at or now, completed_at=now
        )
        # A reviewed label has been checked by a second person: the last step of the item lifecycle.
        Item.objects.filter(pk=item.pk).update(status=ItemStatus.AUDITED, updated_at=now)
    return review


# --- assignments: scheduled jobs ---------------------------------------------------------------------------


def assignments_expire(*, now: dt.datetime | None = None) -> int:
    """Active assignments whose lease has run out become expired, and a fresh slot takes each one's place
    (`_replacements`: crowd and review slots return to their queue, expert slots go to the next best expert).
    Returns how many expired. Submitting an expired assignment answers 409."""
    now = now or timezone.now()
    with transaction.atomic():
        stale = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=AssignmentStatus.ACTIVE, lease_expires_at__lte=now)
            .select_related("item__domain")
            .order_by("lease_expires_at", "id")[:JOB_BATCH]
        )
        if not stale:
            return 0
        ids = [s.pk for s in stale]
        Assignment.objects.filter(id__in=ids, status=AssignmentStatus.ACTIVE).update(
            status=AssignmentStatus.EXPIRED, completed_at=now
        )
        fresh, rankings = _replacements(stale, now=now)
        fresh = Assignment.objects.bulk_create(fresh)
        AuditEvent.objects.bulk_create(
            AuditEvent(
                action="assignment.expire",
                object_type="routing.Assignment",
                object_id=str(s.pk),
                data={
                    "item_id": s.item_id,
                    "kind": s.kind,
                    "assignee_id": s.assignee_id,
                    "lease_expires_at": s.lease_expires_at.isoformat(),
                    **_ranking_summary(rankings.get(s.pk)),
                },
            )
            for s in stale
        )
        _email_on_commit(_offer_emails(fresh))
    return len(stale)


def _on_call_user_ids(domain_paths: Iterable[str], *, now: dt.datetime) -> dict[str, tuple[int, str] | None]:
    """domain path -> (user id, rotation name) of whoever is on call for it now: the most specific
    rotation covering the domain that has someone on call; None when no rotation does."""
    found: dict[str, tuple[int, str] | None] = {}
    expert_ids: dict[str, tuple[int, str]] = {}
    for path in set(domain_paths):
        found[path] = None
        for rotation in on_call_rotations(path):
            expert_id = on_call(rotation, now)
            if expert_id is not None:
                expert_ids[path] = (expert_id, rotation.name)
                break
    users = dict(Expert.objects.filter(id__in=[e for e, _ in expert_ids.values()]).values_list("id", "user_id"))
    for path, (expert_id, rotation) in expert_ids.items():
        found[path] = (users[expert_id], rotation)
    return found


def sla_breaches_handle(*, now: dt.datetime | None = None) -> int:
    """Expert slots still open past their SLA deadline (offered, active, or waiting unassigned) go to the
    on-call expert of the item's domain: the old slot is cancelled, a new one is offered to them with the same
    deadline, they are emailed (on-call duty overrides their email preference), and the move is audited.
    Slots already with the on-call expert, or whose on-call expert labeled or holds the item, stay. Returns
    how many were reassigned."""
    now = now or timezone.now()
    with transaction.atomic():
        breached = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(kind=AssignmentKind.EXPERT, status__in=OPEN_ASSIGNMENT_STATUSES, due_at__lte=now)
            .select_related("item__domain")
            .order_by("due_at", "id")[:JOB_BATCH]
        )
        if not breached:
            return 0
        on_call_by_domain = _on_call_user_ids(
            (s.item.domain.path if s.item.domain_id else "" for s in breached), now=now
        )
        excluded, labeled = _exclusions([s.item_id for s in breached])
        moved: list[tuple[Assignment, Assignment, str]] = []
        for slot in breached:
            target = on_call_by_domain[slot.item.domain.path if slot.item.domain_id else ""]
            if target is None:
                continue
            user_id, rotation = target
            if user_id == slot.assignee_id or user_id in excluded[slot.item_id] | labeled[slot.item_id]:
                continue
            excluded[slot.item_id].add(user_id)
            # An expert slot (the query above), so its successor is one too.
            moved.append((slot, _successor(slot, assignee_id=user_id, now=now), rotation))
        if not moved:
            return 0
        Assignment.objects.filter(id__in=[old.pk for old, _, _ in moved]).update(
            status=AssignmentStatus.CANCELLED, completed_at=now
        )
        Assignment.objects.bulk_create([fresh for _, fresh, _ in moved])
        AuditEvent.objects.bulk_create(
            AuditEvent(
                action="assignment.sla_breach",
                object_type="routing.Assignment",
                object_id=str(old.pk),
                data={
                    "item_id": old.item_id,
                    "due_at": old.due_at.isoformat(),
                    "previous_assignee_id": old.assignee_id,
                    "previous_status": old.status,
                    "on_call_user_id": fresh.assignee_id,
                    "rotation": rotation,
                    "replacement_id": fresh.pk,
                },
            )
            for old, fresh, rotation in moved
        )
        by_user: dict[int, int] = Counter(fresh.assignee_id for _, fresh, _ in moved)
        _email_on_commit(
            {
                user_id: (
                    f"On call: {n} overdue expert assignment{'s' if n != 1 else ''}",
                    (
                        f"{n} escalated item{'s' if n != 1 else ''} passed {'their' if n != 1 else 'its'} SLA "
                        "deadline and were reassigned to you as the on-call expert. Open your queue in the "
                        "labeling workbench."
                    ),
                )
                for user_id, n in by_user.items()
            },
            respect_preference=False,
        )
    return len(moved)


def crowd_breaches_escalate(*, now: dt.datetime | None = None) -> int:
    """Crowd offers still unclaimed past their SLA deadline expire, and their items are routed again (stage
    "crowd_overdue"): routing reads an expired unclaimed crowd offer as the engine input `crowd_overdue`
    (selectors.crowd_overdue), so where the policy still wants the crowd an expert is asked instead
    (offered to the best-ranked one, or waiting in the experts' queue) and the item's other crowd offers
    are withdrawn; claimed crowd slots finish (their lease bounds them). Every later routing reads the same,
    so the item does not drift back to the crowd. Without this, a slot nobody eligible is left to take
    (everyone in the crowd has labeled the item) would wait forever. Returns how many items were routed."""
    now = now or timezone.now()
    overdue = Assignment.objects.filter(
        kind=AssignmentKind.CROWD, status=AssignmentStatus.OFFERED, assignee__isnull=True, due_at__lte=now
    )
    with transaction.atomic():
        candidates = sorted(set(overdue.order_by("due_at", "id").values_list("item_id", flat=True)[:JOB_BATCH]))
        if not candidates:
            return 0
        # Items first, then their slots: the order a submit locks in, so the two never deadlock.
        list(Item.objects.select_for_update().filter(id__in=candidates).order_by("id").values_list("id", flat=True))
        if not overdue.filter(item_id__in=candidates).update(status=AssignmentStatus.EXPIRED, completed_at=now):
            return 0
        # Only the items whose offers this run expired (someone may have claimed the last one meanwhile).
        item_ids = sorted(set(
            Assignment.objects.filter(
                item_id__in=candidates, kind=AssignmentKind.CROWD, status=AssignmentStatus.EXPIRED,
                assignee__isnull=True, completed_at=now,
            ).values_list("item_id", flat=True)
        ))
        return len(items_route(item_ids=item_ids, stage=Stage.CROWD_OVERDUE, now=now).decisions)


def waiting_assign(*, now: dt.datetime | None = None) -> int:
    """Offer unassigned expert slots, soonest deadline first, each to the best-ranked qualified expert who
    is on shift right now and below capacity (one roster snapshot; loads counted as offers are made).
    Returns how many were offered."""
    now = now or timezone.now()
    with transaction.atomic():
        waiting = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(kind=AssignmentKind.EXPERT, status=AssignmentStatus.OFFERED, assignee__isnull=True)
            .select_related("item__domain")
            .order_by("due_at", "id")[:JOB_BATCH]
        )
        if not waiting:
            return 0
        roster = _Roster.load()
        excluded, labeled = _exclusions([s.item_id for s in waiting])
        offered: list[Assignment] = []
        events: list[AuditEvent] = []
        for slot in waiting:
            ranking = roster.rank(
                item=slot.item,
                now=now,
                due_at=slot.due_at or now,
                already_labeled_by=labeled[slot.item_id],
                exclude_user_ids=excluded[slot.item_id],
            )
            on_shift = [c for c in ranking.candidates if c.components.wait_hours == 0]
            if not on_shift:
                continue
            best = on_shift[0]
            updated = Assignment.objects.filter(
                pk=slot.pk, status=AssignmentStatus.OFFERED, assignee__isnull=True
            ).update(assignee_id=best.user_id)
            if updated != 1:
                continue
            roster.took(best.expert_id)
            excluded[slot.item_id].add(best.user_id)
            slot.assignee_id = best.user_id
            offered.append(slot)
            events.append(
                AuditEvent(
                    action="assignment.offer",
                    object_type="routing.Assignment",
                    object_id=str(slot.pk),
                    data={"item_id": slot.item_id, **_ranking_summary(ranking), "offered_to": best.user_id},
                )
            )
        AuditEvent.objects.bulk_create(events)
        _email_on_commit(_offer_emails(offered))
    return len(offered)


@dataclass(frozen=True)
class AccuracyRefreshResult:
    accuracy_rows: int
    reliabilities: Mapping[str, int]  # project slug -> annotators estimated
    rechecked: Mapping[str, int] = dataclasses.field(default_factory=dict)  # project slug -> items routed again


def _accuracy_counts(*, now: dt.datetime) -> dict[tuple[int, int | None], dict[str, int]]:
    """(user id, domain id or None for overall) -> gold and agreement counts over annotations submitted up
    to `now`, by SQL aggregation.

    gold: annotations on items with a gold label, correct when the label equals it.
    agreement: annotations on items with a final label and no gold label, correct when equal to the final
    label, leaving out expert and reviewer annotations on items whose final label came from an expert: there
    the annotation usually *is* the final label, and agreeing with oneself measures nothing.
    """
    counts: dict[tuple[int, int | None], dict[str, int]] = defaultdict(
        lambda: {"gold_correct": 0, "gold_total": 0, "agreement_correct": 0, "agreement_total": 0}
    )
    on_roster = Annotation.objects.filter(annotator__expert__isnull=False, submitted_at__lte=now)
    gold = (
        on_roster.filter(item__gold__isnull=False)
        .values("annotator_id", "item__domain_id")
        .annotate(total=Count("id"), correct=Count("id", filter=Q(label=F("item__gold__label"))))
        .order_by()
    )
    agreement = (
        on_roster.filter(item__gold__isnull=True)
        .exclude(item__final_label="")
        .exclude(role__in=[Role.EXPERT, Role.REVIEWER], item__final_source=FinalSource.EXPERT)
        .values("annotator_id", "item__domain_id")
        .annotate(total=Count("id"), correct=Count("id", filter=Q(label=F("item__final_label"))))
        .order_by()
    )
    for kind, rows in (("gold", gold), ("agreement", agreement)):
        for row in rows:
            user_id, domain_id = row["annotator_id"], row["item__domain_id"]
            # Every annotation counts overall; those on items with a domain also count in that domain.
            for key in [(user_id, None)] + ([(user_id, domain_id)] if domain_id is not None else []):
                counts[key][f"{kind}_total"] += row["total"]
                counts[key][f"{kind}_correct"] += row["correct"]
    return counts


@dataclass(frozen=True)
class ProjectEstimate:
    reliabilities: list[AnnotatorReliability]  # by annotator id
    class_prior: tuple[float, ...]  # the classes' prevalence among labeled items; () without labels
    model_temperature: float | None = None  # fitted when the live policy learns it and there is evidence


def project_reliabilities_estimate(*, project: Project, now: dt.datetime) -> ProjectEstimate:
    """The annotators' confusion matrices from the project's annotations submitted up to `now`, by the
    pilot's learner (simulation.reliability_learner, the same settings the replay uses):
    MAP Dawid-Skene with the gold labels pinned, each item's latest prediction as its prior (to the live
    policy's model_prior_weight), and each annotator's rows drawn towards the live policy's prior accuracy
    for their role and towards the average of their role's annotators. So live routing reads reliabilities
    estimated exactly as the replay that calibrated its thresholds estimated them."""
    classes = project.class_names
    k = len(classes)
    if k < 2:
        return ProjectEstimate([], ())
    class_index = {name: i for i, name in enumerate(classes)}
    config = _live_config(project)
    learn = reliability_learner(k, config)
    item_ids: set[int] = set()
    expert_tier: set[int] = set()
    rows = []
    for item_id, annotator_id, label, role in (
        Annotation.objects.filter(item__project=project, submitted_at__lte=now)
        .order_by()
        .values_list("item_id", "annotator_id", "label", "role")
        .iterator(chunk_size=10_000)
    ):
        if label in class_index:
            rows.append((item_id, annotator_id, class_index[label]))
            item_ids.add(item_id)
            # An annotator who ever labeled as an expert or reviewer is judged against the expert prior.
            if role in aggregation.EXPERT_ROLES:
                expert_tier.add(annotator_id)
    if not rows:
        return ProjectEstimate([], ())
    if config.learn_model_temperature:
        # The next fit starts from what routing reads now, as the replay's learner keeps its last fit.
        policy = getattr(project, "escalation_policy", None)
        learn.start_temperature(policy.model_temperature if policy is not None else None)
    for item_id, annotator_id, given in rows:
        learn.add_label(item_id, annotator_id, given, role="expert" if annotator_id in expert_tier else "crowd")
    if config.learn_model_temperature:
        # Gold items nobody labeled still show what the model's probabilities are worth.
        item_ids.update(GoldLabel.objects.filter(item__project=project).values_list("item_id", flat=True))
    ids = sorted(item_ids)
    for chunk in selectors.chunked(ids):
        for item_id, label in GoldLabel.objects.filter(item_id__in=chunk).values_list("item_id", "label"):
            if label in class_index:
                learn.set_truth(item_id, class_index[label])
        if config.model_prior_weight or config.learn_model_temperature:
            latest: dict[int, Mapping[str, float]] = {}
            # Oldest first, so the last one kept per item is its latest prediction.
            for item_id, probabilities in (
                Prediction.objects.filter(item_id__in=chunk)
                .order_by("item_id", "created_at", "id")
                .values_list("item_id", "probabilities")
            ):
                latest[item_id] = probabilities
            for item_id, probabilities in latest.items():
                vector = [max(float(probabilities.get(c, 0.0)), 0.0) for c in classes]
                if sum(vector) > 0:
                    learn.set_model_prior(item_id, vector)
    reliabilities = sorted(learn.refit().values(), key=lambda r: r.annotator_id)
    return ProjectEstimate(reliabilities, learn.class_prior(), learn.model_temperature())


def class_prior_save(*, project: Project, class_prior: Sequence[float]) -> None:
    """Store the project's learned class prior with the classes it is for (routing reads it)."""
    policy = policy_for_project(project)
    policy.class_prior = {"classes": list(project.class_names), "prior": list(class_prior)}
    policy.save(update_fields=["class_prior"])


def model_temperature_save(*, project: Project, temperature: float | None) -> bool:
    """Store the model's newly fitted temperature (routing reads it); True when it moved enough that the
    labels accepted from the model deserve another look (temperature.temperature_changed)."""
    policy = policy_for_project(project)
    before = policy.model_temperature
    if temperature is None or temperature == before:
        return False
    policy.model_temperature = temperature
    policy.save(update_fields=["model_temperature"])
    return temperature_changed(before, temperature)


def consensus_recheck(*, project: Project, now: dt.datetime, model_labels: bool = False) -> int:
    """When the live policy asks for it (consensus_recheck), route again the project's items labeled by
    consensus whose decision the current estimates change: a label accepted on reliabilities that have
    since been revised asks for more labels or changes, as the pilot's replay does after every refit.
    `model_labels` (the model's temperature moved, and the policy learns it): the items labeled by the
    model too. Returns how many items were routed again (stage "recheck")."""
    config = _live_config(project)
    sources = [FinalSource.CONSENSUS] if config.consensus_recheck else []
    if model_labels and config.learn_model_temperature:
        sources.append(FinalSource.MODEL)
    if not sources:
        return 0
    ids = list(
        Item.objects.filter(project=project, status=ItemStatus.LABELED, final_source__in=sources)
        .order_by("id")
        .values_list("id", flat=True)
    )
    changed = []
    for chunk in selectors.chunked(ids):
        for loaded in selectors.route_inputs(item_ids=chunk):
            decision = evaluate(loaded.item_input, config, loaded.reliabilities)
            if decision.outcome != Outcome.ACCEPT or decision.final_label != loaded.item.final_label:
                changed.append(loaded.item.id)
    if changed:
        items_route(item_ids=changed, stage=Stage.RECHECK, now=now)
    return len(changed)


def accuracy_refresh(*, now: dt.datetime | None = None) -> AccuracyRefreshResult:
    """Re-measure people: per roster member and domain (and overall) gold and agreement counts stored with
    experts.services.expert_accuracy_record (ranking reads them), and per project the annotators' confusion
    matrices by Dawid-Skene saved with annotator_reliabilities_save (routing reads them). Only annotations
    submitted up to `now` count."""
    now = now or timezone.now()
    counts = _accuracy_counts(now=now)
    experts = dict(Expert.objects.filter(user_id__in={u for u, _ in counts}).values_list("user_id", "id"))
    expert_rows = {e.pk: e for e in Expert.objects.filter(id__in=experts.values())}
    domains = {d.pk: d for d in Domain.objects.filter(id__in={d for _, d in counts if d is not None})}
    written = 0
    for (user_id, domain_id), figures in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        expert_accuracy_record(
            expert=expert_rows[experts[user_id]],
            domain=domains[domain_id] if domain_id is not None else None,
            **figures,
        )
        written += 1
    estimated: dict[str, int] = {}
    rechecked: dict[str, int] = {}
    for project in Project.objects.filter(items__annotations__isnull=False).distinct().order_by("id"):
        estimate = project_reliabilities_estimate(project=project, now=now)
        if estimate.reliabilities:
            annotator_reliabilities_save(project=project, reliabilities=estimate.reliabilities)
            class_prior_save(project=project, class_prior=estimate.class_prior)
            moved = model_temperature_save(project=project, temperature=estimate.model_temperature)
            rechecked[project.slug] = consensus_recheck(project=project, now=now, model_labels=moved)
        estimated[project.slug] = len(estimate.reliabilities)
    return AccuracyRefreshResult(accuracy_rows=written, reliabilities=estimated, rechecked=rechecked)


# Dotted task path -> (schedule type, minutes for the MINUTES type); see routing/tasks.py.
SCHEDULES: Mapping[str, tuple[str, int | None]] = {
    "routing.tasks.assignments_expire": (Schedule.MINUTES, 1),
    "routing.tasks.sla_breaches_handle": (Schedule.MINUTES, 5),
    "routing.tasks.crowd_breaches_escalate": (Schedule.MINUTES, 5),
    "routing.tasks.waiting_assign": (Schedule.MINUTES, 5),
    "routing.tasks.accuracy_refresh": (Schedule.HOURLY, None),
    # Queues one calibration per project (routing.feedback.calibration_recommend).
    "routing.tasks.calibration_recommendations_enqueue": (Schedule.DAILY, None),
}


def schedules_ensure() -> list[Schedule]:
    """Create or update the django-q schedules of the assignment jobs (named after their task), so every
    deployment runs them; idempotent."""
    schedules = []
    with transaction.atomic():
        for func, (schedule_type, minutes) in SCHEDULES.items():
            schedule, _ = Schedule.objects.update_or_create(
                name=func.rsplit(".", 1)[1],
                defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1},
            )
            schedules.append(schedule)
    return schedules
