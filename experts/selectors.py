"""Reads of the roster, returned as the plain snapshots `availability` and `ranking` work on.

Each selector runs a fixed number of queries however many experts there are (prefetching, never per row).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.db.models import Prefetch, QuerySet

from experts.availability import (
    ExpertiseSpec,
    ExpertSnapshot,
    RotationSpec,
    ShiftSpec,
    TimeOffSpec,
    domain_ancestors,
    is_on_shift,
)
from experts.models import Expert, ExpertAccuracy, Expertise, OnCallMember, OnCallRotation


def roster_prefetches() -> tuple[Prefetch | str, ...]:
    """What `snapshot_from_expert` reads; prefetch these on any Expert queryset turned into snapshots."""
    return (
        Prefetch("expertise", queryset=Expertise.objects.select_related("domain")),
        "shifts",
        "time_off",
        Prefetch("accuracy", queryset=ExpertAccuracy.objects.select_related("domain")),
    )


def snapshot_from_expert(expert: Expert, *, open_assignments: int = 0) -> ExpertSnapshot:
    """One Expert, with `roster_prefetches()` already loaded (otherwise this costs four queries per expert)."""
    return ExpertSnapshot(
        expert_id=expert.pk,
        user_id=expert.user_id,
        display_name=expert.display_name,
        time_zone=expert.time_zone,
        languages=tuple(expert.languages or ()),
        role=expert.role,
        capacity=expert.capacity,
        active=expert.active,
        expertise=tuple(ExpertiseSpec(e.domain.path, e.proficiency) for e in expert.expertise.all()),
        shifts=tuple(ShiftSpec(s.weekday, s.start, s.end) for s in expert.shifts.all()),
        time_off=tuple(TimeOffSpec(t.start_date, t.end_date) for t in expert.time_off.all()),
        accuracy={(a.domain.path if a.domain else ""): a.accuracy for a in expert.accuracy.all()},
        open_assignments=open_assignments,
    )


def expert_snapshots(
    *,
    user_ids: Iterable[int] | None = None,
    role: str | None = None,
    active_only: bool = True,
    open_assignment_counts: Mapping[int, int] | None = None,
) -> list[ExpertSnapshot]:
    """Snapshots by expert_id, in five queries. `open_assignment_counts` maps user_id to open assignments
    (the caller owns assignments; users missing from it have none)."""
    experts: QuerySet[Expert] = Expert.objects.order_by("pk")
    if user_ids is not None:
        experts = experts.filter(user_id__in=list(user_ids))
    if role is not None:
        experts = experts.filter(role=role)
    if active_only:
        experts = experts.filter(active=True)
    counts = open_assignment_counts or {}
    return [
        snapshot_from_expert(e, open_assignments=counts.get(e.user_id, 0))
        for e in experts.prefetch_related(*roster_prefetches())
    ]


def expert_ids_on_shift(*, at: dt.datetime) -> set[int]:
    """Ids of experts (active or not) on shift at `at`."""
    return {s.expert_id for s in expert_snapshots(active_only=False) if is_on_shift(s, at)}


def rotation_spec(rotation: OnCallRotation) -> RotationSpec:
    """One rotation; prefetch `members` (ordered, active only) as `on_call_rotations` does to avoid a query."""
    return RotationSpec(
        rotation_id=rotation.pk,
        name=rotation.name,
        domain_path=rotation.domain.path,
        period_days=rotation.period_days,
        starts_on=rotation.starts_on,
        member_expert_ids=tuple(m.expert_id for m in rotation.members.all()),
    )


def active_members_prefetch() -> Prefetch:
    # Inactive experts are skipped, so the rotation carries on over the remaining members.
    members = OnCallMember.objects.filter(expert__active=True).select_related("expert").order_by("position", "pk")
    return Prefetch("members", queryset=members)


def on_call_rotations(domain_path: str) -> list[RotationSpec]:
    """Rotations whose domain covers `domain_path`, most specific domain first (then by name), in two
    queries. An empty `domain_path` (an item without a domain) gets every rotation."""
    rotations = OnCallRotation.objects.select_related("domain").prefetch_related(active_members_prefetch())
    ancestors = domain_ancestors(domain_path)
    if ancestors:
        rotations = rotations.filter(domain__path__in=ancestors)
    specs = [rotation_spec(r) for r in rotations]
    return sorted(specs, key=lambda s: (-s.domain_path.count("/"), s.domain_path, s.name, s.rotation_id))


