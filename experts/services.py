"""Writes to the roster. Every function validates fully and writes inside one transaction, or not at all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from experts.availability import ShiftSpec
from experts.models import Domain, Expert, ExpertAccuracy, Expertise, OnCallMember, OnCallRotation, Role, Shift, TimeOff
from experts.ranking import PRIOR_ACCURACY

# Accuracy smoothing (see expert_accuracy_from_counts): the prior counts as this many observations, and one
# agreement with consensus counts as this share of one gold check, because consensus is itself sometimes wrong.
ACCURACY_PRIOR_WEIGHT = 5.0
AGREEMENT_WEIGHT = 0.5


def domain_ensure(*, path: str, name: str = "") -> Domain:
    """The domain at `path`, created with any missing ancestors (`medical/radiology` also makes `medical`).
    `name` names the leaf only when it is created; ancestors are named after their last segment."""
    path = path.strip().strip("/")
    if not path:
        raise ValidationError({"path": "A domain needs a path, e.g. 'medical/radiology'."})
    with transaction.atomic():
        parent: Domain | None = None
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            node_path = "/".join(parts[:depth])
            node = Domain.objects.filter(path=node_path).first()
            if node is None:
                leaf = depth == len(parts)
                node = Domain(path=node_path, name=(name if leaf and name else parts[depth - 1]), parent=parent)
                node.full_clean()
                node.save()
            parent = node
    return node


def _domains_by_path(paths: Iterable[str], *, field: str) -> dict[str, Domain]:
    wanted = {p.strip("/") for p in paths}
    found = {d.path: d for d in Domain.objects.filter(path__in=wanted)}
    missing = sorted(wanted - found.keys())
    if missing:
        raise ValidationError({field: f"Unknown domain(s): {', '.join(missing)}. Create them first."})
    return found


@transaction.atomic
def expert_create(
    *,
    user,
    display_name: str,
    time_zone: str = "UTC",
    languages: Sequence[str] = (),
    role: str = Role.EXPERT,
    capacity: int = 5,
    active: bool = True,
    expertise: Mapping[str, int] | Iterable[tuple[str, int]] = (),
    shifts: Iterable[ShiftSpec | tuple[int, dt.time, dt.time]] = (),
    time_off: Iterable[tuple[dt.date, dt.date]] = (),
) -> Expert:
    """Put `user` on the roster. `expertise` maps existing domain paths to proficiency 1-5; `shifts` are
    (weekday 0=Monday, local start, local end); `time_off` are inclusive (first day, last day) pairs."""
    expert = Expert(
        user=user,
        display_name=display_name,
        time_zone=time_zone,
        languages=list(languages),
        role=role,
        capacity=capacity,
        active=active,
    )
    expert.full_clean()
    expert.save()
    pairs = list(expertise.items() if isinstance(expertise, Mapping) else expertise)
    domains = _domains_by_path((path for path, _ in pairs), field="expertise")
    for n, (path, proficiency) in enumerate(pairs):
        _save_row(Expertise(expert=expert, domain=domains[path.strip("/")], proficiency=proficiency), "expertise", n)
    for n, shift in enumerate(shifts):
        spec = shift if isinstance(shift, ShiftSpec) else ShiftSpec(*shift)
        _save_row(Shift(expert=expert, weekday=spec.weekday, start=spec.start, end=spec.end), "shifts", n)
    for n, (start_date, end_date) in enumerate(time_off):
        _save_row(TimeOff(expert=expert, start_date=start_date, end_date=end_date), "time_off", n)
    return expert


def _save_row(row, field: str, index: int) -> None:
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ValidationError({field: f"row {index + 1}: {'; '.join(exc.messages)}"}) from exc
    row.save()


@transaction.atomic
def claim_counters_reset(*, user_ids: Iterable[int]) -> int:
    """Start these people's claim counters (Expert.claims_made) from zero again, as for a rebuilt demo, so
    their gold-check draws repeat; returns how many roster entries changed."""
    return Expert.objects.filter(user_id__in=list(user_ids)).update(claims_made=0)


def time_off_add(*, expert: Expert, start_date: dt.date, end_date: dt.date, reason: str = "") -> TimeOff:
    row = TimeOff(expert=expert, start_date=start_date, end_date=end_date, reason=reason)
    row.full_clean()
    row.save()
    return row


@transaction.atomic
def on_call_rotation_create(
    *, domain: Domain, name: str, starts_on: dt.date, members: Sequence[Expert], period_days: int = 7
) -> OnCallRotation:
    """A rotation whose members take turns in the order given."""
    rotation = OnCallRotation(domain=domain, name=name, period_days=period_days, starts_on=starts_on)
    rotation.full_clean()
    rotation.save()
    for position, expert in enumerate(members):
        _save_row(OnCallMember(rotation=rotation, expert=expert, position=position), "members", position)
    return rotation


def expert_accuracy_from_counts(
    *, gold_correct: int, gold_total: int, agreement_correct: int, agreement_total: int
) -> float | None:
    """Smoothed accuracy, a beta-binomial posterior mean with agreement down-weighted:

        accuracy = (5 * 0.8 + gold_correct + 0.5 * agreement_correct) / (5 + gold_total + 0.5 * agreement_total)

    i.e. the prior accuracy 0.8 counts as 5 observations, a gold check as 1, an agreement with the final
    consensus as 0.5. A few lucky labels cannot lift someone to 1.0, and the estimate moves to the
    measurements as they accumulate. None when nothing has been measured (ranking then falls back).
    """
    if gold_total == 0 and agreement_total == 0:
        return None
    correct = ACCURACY_PRIOR_WEIGHT * PRIOR_ACCURACY + gold_correct + AGREEMENT_WEIGHT * agreement_correct
    total = ACCURACY_PRIOR_WEIGHT + gold_total + AGREEMENT_WEIGHT * agreement_total
    return correct / total


@transaction.atomic
def expert_accuracy_record(
    *,
    expert: Expert,
    domain: Domain | None,
    gold_correct: int,
    gold_total: int,
    agreement_correct: int,
    agreement_total: int,
) -> ExpertAccuracy:
    """Store the counts for `expert` in `domain` (None: over all domains), replacing earlier counts, and the
    smoothed accuracy from `expert_accuracy_from_counts`."""
    counts = {
        "gold_correct": gold_correct,
        "gold_total": gold_total,
        "agreement_correct": agreement_correct,
        "agreement_total": agreement_total,
    }
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise ValidationError({name: f"must be a whole number >= 0, got {value!r}"})
    for kind in ("gold", "agreement"):
        correct, total = counts[f"{kind}_correct"], counts[f"{kind}_total"]
        if correct > total:
            raise ValidationError({f"{kind}_correct": f"{correct} correct out of {total} is impossible"})
    row, _ = ExpertAccuracy.objects.select_for_update().update_or_create(
        expert=expert, domain=domain, defaults={**counts, "accuracy": expert_accuracy_from_counts(**counts)}
    )
    return row
