"""What a person does with a claimed assignment: submit a label (the item is routed again at once),
decline it saying why, or give a review's verdict."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.audit import audit_record
from core.bulk import columns, datetime_value, json_value, model_from_row, prepared_cursor
from experts.models import Role
from experts.ranking import Ranking
from labeling.models import (
    Annotation,
    Item,
    ItemStatus,
    Review,
    ReviewVerdict,
)
from routing.engine.types import Stage
from routing.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
)
from routing.offers import email_on_commit, offer_emails, ranking_summary, replacements
from routing.services import item_final_label_override, items_route
from work import selectors as work_selectors
from work.exceptions import AssignmentConflict, AssignmentInvalid, AssignmentNotFound

# Reported time spent may exceed the time the server measured since the claim by this much (clock
# granularity, the network), not more.
TIME_SPENT_SLACK = dt.timedelta(minutes=2)


ANNOTATION_ROLE = {
    AssignmentKind.CROWD: Role.CROWD,
    AssignmentKind.EXPERT: Role.EXPERT,
    AssignmentKind.REVIEW: Role.REVIEWER,
    AssignmentKind.GOLD_CHECK: Role.CROWD,
}


RATIONALE_KINDS = (AssignmentKind.EXPERT, AssignmentKind.REVIEW)


def _lock_own(*, assignment_id: Any, user: Any) -> Assignment:
    """The user's assignment, locked, after its item (selectors.assignment_locked); anyone else's raises
    AssignmentNotFound exactly like an id that does not exist."""
    try:
        assignment_id = int(assignment_id)
    except (TypeError, ValueError):
        raise AssignmentNotFound(f"No assignment {assignment_id!r} of yours.") from None
    if not 0 < assignment_id < 2**63:  # ids are positive 64-bit integers; anything else is nobody's
        raise AssignmentNotFound(f"No assignment {assignment_id} of yours.")
    assignment = work_selectors.assignment_locked(assignment_id=assignment_id, user_id=user.pk)
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


def nobody_on_shift(ranking: Ranking) -> bool:
    """No other qualified expert is on shift to take a declined expert slot now: it waits in the experts'
    queue, or for someone whose shift starts later."""
    return not any(c.components.wait_hours == 0 for c in ranking.candidates)


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
        fresh, rankings = replacements([assignment], now=now)
        fresh = Assignment.objects.bulk_create(fresh)
        ranking = rankings.get(assignment.pk)
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
                **ranking_summary(ranking),
                # The admin's "Needs attention" list (work.selectors.declined_waiting) shows such items
                # while nobody on shift holds them.
                **({"nobody_on_shift": nobody_on_shift(ranking)} if ranking is not None else {}),
            },
        )
        email_on_commit(offer_emails(fresh))
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
