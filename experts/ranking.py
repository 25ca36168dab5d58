"""Rank the roster for one item: who may take it, in what order, and why, in words (pure, no ORM)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from experts.availability import (
    DEFAULT_LOOKAHEAD,
    DEFAULT_ROLES,
    HOUR,
    UTC,
    ExpertSnapshot,
    covering_expertise,
    domain_ancestors,
    next_shift_start,
    speaks,
)

# Accuracy assumed for someone never measured; also the centre that services shrink measurements towards.
PRIOR_ACCURACY = 0.8
WEIGHT_ACCURACY = 0.6
WEIGHT_PROFICIENCY = 0.4
WEIGHT_LOAD = 0.3
WEIGHT_WAIT = 0.3
# The explanation names at most this many experts besides the pick, so it stays readable for big rosters.
EXPLANATION_MAX_LISTED = 8


class RejectionCode(StrEnum):
    INACTIVE = "inactive"
    EXCLUDED = "excluded"
    ALREADY_LABELED = "already_labeled"
    ROLE = "role"
    DOMAIN = "domain"
    LANGUAGE = "language"
    AT_CAPACITY = "at_capacity"
    OFF_SHIFT = "off_shift"


# Mismatches that do not change by the hour; the explanation only counts them unless nobody is eligible.
STATIC_REJECTIONS = frozenset(
    {RejectionCode.INACTIVE, RejectionCode.ROLE, RejectionCode.DOMAIN, RejectionCode.LANGUAGE}
)


@dataclass(frozen=True)
class ScoreComponents:
    accuracy: float
    accuracy_source: str  # the domain path measured in, "overall", or "prior" (never measured)
    proficiency: int
    proficiency_domain: str  # the expertise the proficiency comes from ("" when the item has no domain)
    open_assignments: int
    capacity: int
    load: float  # open_assignments / capacity
    on_shift_from: dt.datetime  # `now` when on shift already
    wait_hours: float


@dataclass(frozen=True)
class Candidate:
    expert_id: int
    user_id: int
    display_name: str
    score: float
    components: ScoreComponents


@dataclass(frozen=True)
class Rejection:
    expert_id: int
    user_id: int
    display_name: str
    code: RejectionCode
    reason: str  # in words, e.g. "at capacity 5/5"


@dataclass(frozen=True)
class Ranking:
    candidates: tuple[Candidate, ...]  # eligible, best first
    rejected: tuple[Rejection, ...]  # by expert_id
    explanation: str

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        return _json_ready(dataclasses.asdict(self))


def measured_accuracy(expert: ExpertSnapshot, domain: str) -> tuple[float, str]:
    """(accuracy, source): the measurement in the most specific domain covering `domain`, else the overall
    one, else PRIOR_ACCURACY with source "prior"."""
    for path in domain_ancestors(domain):
        value = expert.accuracy.get(path)
        if value is not None:
            return float(value), path
    overall = expert.accuracy.get("")
    if overall is not None:
        return float(overall), "overall"
    return PRIOR_ACCURACY, "prior"


def _proficiency(expert: ExpertSnapshot, domain: str) -> tuple[int, str]:
    if domain.strip("/"):
        spec = covering_expertise(expert, domain)
    else:
        # Any expertise will do for an item without a domain; the strongest counts.
        spec = max(expert.expertise, key=lambda e: e.proficiency, default=None)
    return (spec.proficiency, spec.domain_path) if spec else (1, "")


def _when(at: dt.datetime, now: dt.datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%H:%M UTC") if at.date() == now.astimezone(UTC).date() else at.strftime("%Y-%m-%d %H:%M UTC")


def _roster_rejection(
    expert: ExpertSnapshot,
    *,
    domain: str,
    language: str,
    roles: Collection[str],
    already_labeled_by: Collection[int],
    exclude_user_ids: Collection[int],
) -> tuple[RejectionCode, str] | None:
    """The first failed check that needs no shift arithmetic, or None."""
    if not expert.active:
        return RejectionCode.INACTIVE, "inactive"
    if expert.user_id in exclude_user_ids:
        return RejectionCode.EXCLUDED, "excluded for this item"
    if expert.user_id in already_labeled_by:
        return RejectionCode.ALREADY_LABELED, "already labeled this item"
    if expert.role not in roles:
        return RejectionCode.ROLE, f"role {expert.role}, not {' or '.join(sorted(roles))}"
    if domain.strip("/") and covering_expertise(expert, domain) is None:
        return RejectionCode.DOMAIN, f"no expertise covering {domain}"
    if not speaks(expert, language):
        spoken = ", ".join(expert.languages) or "no languages"
        return RejectionCode.LANGUAGE, f"does not speak {language} (speaks {spoken})"
    if expert.open_assignments >= expert.capacity:
        return RejectionCode.AT_CAPACITY, f"at capacity {expert.open_assignments}/{expert.capacity}"
    return None


def _shift_rejection(
    on_shift_from: dt.datetime | None, *, now: dt.datetime, sla_deadline: dt.datetime, lookahead: dt.timedelta
) -> tuple[RejectionCode, str] | None:
    if on_shift_from is None:
        return RejectionCode.OFF_SHIFT, f"no shift in the next {lookahead.days} days"
    if on_shift_from > now and on_shift_from >= sla_deadline:
        return (
            RejectionCode.OFF_SHIFT,
            f"off shift until {_when(on_shift_from, now)}, after the SLA deadline {_when(sla_deadline, now)}",
        )
    return None


def _describe(candidate: Candidate, now: dt.datetime) -> str:
    c = candidate.components
    if c.accuracy_source == "prior":
        accuracy = f"accuracy {c.accuracy:.2f} (prior, not measured)"
    elif c.accuracy_source in {"overall", c.proficiency_domain}:
        accuracy = f"accuracy {c.accuracy:.2f}" + (" overall" if c.accuracy_source == "overall" else "")
    else:
        accuracy = f"accuracy {c.accuracy:.2f} in {c.accuracy_source}"
    where = c.proficiency_domain or "general"
    text = f"{where} proficiency {c.proficiency}, {accuracy}, {c.open_assignments}/{c.capacity} open"
    if c.wait_hours > 0:
        text += f", on shift from {_when(c.on_shift_from, now)}"
    return text


def _explain(candidates: list[Candidate], rejected: list[Rejection], now: dt.datetime) -> str:
    listed: list[str] = []
    if candidates:
        best = candidates[0]
        head = f"picked {best.display_name}: {_describe(best, now)}"
        listed += [
            f"{c.display_name} ranked {rank} (score {c.score:.2f} vs {best.score:.2f}): {_describe(c, now)}"
            for rank, c in enumerate(candidates[1:], start=2)
        ]
    else:
        head = "nobody eligible"
    live = [r for r in rejected if r.code not in STATIC_REJECTIONS]
    static = [r for r in rejected if r.code in STATIC_REJECTIONS]
    listed += [f"{r.display_name} {r.reason}" for r in live]
    if not candidates:
        listed += [f"{r.display_name} {r.reason}" for r in static]
        static = []
    parts = [head, *listed[:EXPLANATION_MAX_LISTED]]
    if len(listed) > EXPLANATION_MAX_LISTED:
        parts.append(f"and {len(listed) - EXPLANATION_MAX_LISTED} more")
    if static:
        parts.append(f"{len(static)} not qualified (inactive, role, domain or language)")
    return "; ".join(parts)


def rank_experts(
    experts: Iterable[ExpertSnapshot],
    *,
    domain: str,
    language: str,
    now: dt.datetime,
    sla_deadline: dt.datetime,
    already_labeled_by: Collection[int] = frozenset(),
    exclude_user_ids: Collection[int] = (),
    roles: Collection[str] = DEFAULT_ROLES,
) -> Ranking:
    """Rank `experts` for an item in `domain`/`language`, as of `now`, to be done by `sla_deadline`.

    Eligible: active; user not in `exclude_user_ids` nor `already_labeled_by` (user ids); role in `roles`;
    expertise covering the domain; speaks the language; open assignments below capacity; on shift at `now`
    or coming on shift before `sla_deadline`. Each rejected expert gets the first failed check, in that order.

    Score, every term in [0, 1]:

        score = 0.6 * accuracy + 0.4 * (proficiency - 1) / 4 - 0.3 * open / capacity - 0.3 * wait / slack

    accuracy: measured in the most specific domain covering the item, else overall, else the prior 0.8;
    proficiency: of the most specific covering expertise (1-5); wait: time until on shift (0 when on shift);
    slack: `sla_deadline - now` (waiting half the slack costs as much as being half full).
    Order: score descending, then expert_id ascending; scores are rounded to 9 decimals first so the order
    does not hang on float noise.
    """
    for name, value in (("now", now), ("sla_deadline", sla_deadline)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    slack = sla_deadline - now
    lookahead = max(DEFAULT_LOOKAHEAD, slack)
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    for expert in experts:
        failed = _roster_rejection(
            expert,
            domain=domain,
            language=language,
            roles=roles,
            already_labeled_by=already_labeled_by,
            exclude_user_ids=exclude_user_ids,
        )
        on_shift_from = None
        # Shifts are the costly check, so they are only computed for experts who pass the others.
        if failed is None:
            on_shift_from = next_shift_start(expert, now, lookahead)
            failed = _shift_rejection(on_shift_from, now=now, sla_deadline=sla_deadline, lookahead=lookahead)
        if failed is not None:
            code, reason = failed
            rejected.append(Rejection(expert.expert_id, expert.user_id, expert.display_name, code, reason))
            continue
        accuracy, source = measured_accuracy(expert, domain)
        proficiency, proficiency_domain = _proficiency(expert, domain)
        load = expert.open_assignments / expert.capacity
        wait = on_shift_from - now  # never negative: shift_intervals clips to `now`
        wait_share = wait / slack if slack > dt.timedelta(0) else 0.0
        score = (
            WEIGHT_ACCURACY * accuracy
            + WEIGHT_PROFICIENCY * (proficiency - 1) / 4
            - WEIGHT_LOAD * load
            - WEIGHT_WAIT * wait_share
        )
        components = ScoreComponents(
            accuracy=accuracy,
            accuracy_source=source,
            proficiency=proficiency,
            proficiency_domain=proficiency_domain,
            open_assignments=expert.open_assignments,
            capacity=expert.capacity,
            load=load,
            on_shift_from=on_shift_from,
            wait_hours=wait / HOUR,
        )
        candidates.append(Candidate(expert.expert_id, expert.user_id, expert.display_name, round(score, 9), components))
    candidates.sort(key=lambda c: (-c.score, c.expert_id))
    rejected.sort(key=lambda r: r.expert_id)
    return Ranking(tuple(candidates), tuple(rejected), _explain(candidates, rejected, now))


def _json_ready(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
