"""Who is qualified and on shift when: pure functions over frozen snapshots of the roster (no ORM).

Time rules, applied everywhere in this module:

- Every datetime passed in must be timezone-aware; every datetime returned is in UTC. Shifts are stored in
  the expert's local wall-clock time and converted to UTC per concrete day with `zoneinfo`, so one weekly
  shift maps to different UTC hours before and after a daylight-saving change.
- A local time that does not exist (inside a spring-forward gap, e.g. 02:30 in Berlin on 2026-03-29) is
  moved forward by the length of the gap (to 03:30 local), which is what PEP 495's `fold=0` and java.time do.
  A shift 01:30-03:00 on that day therefore lasts 30 minutes, not 90.
- A local time that occurs twice (fall-back, e.g. 02:30 in Berlin on 2026-10-25) is read with `fold=0`: the
  first occurrence, still on summer time. A shift 01:30-03:00 on that day lasts 2.5 hours.
- A shift whose end is at or before its start crosses midnight and ends on the next local day (equal start
  and end: a 24-hour shift). A shift that collapses to nothing in UTC (possible only inside a gap) is dropped.
- A shift belongs to the local day it starts on. Time off removes whole local days, i.e. every shift that
  starts on a day off, including the hours an overnight shift runs into the next day. A shift that starts the
  evening before a day off is kept in full, even the hours after midnight: a night shift is one piece of
  work that people plan as part of the day it begins, and cutting it at midnight would create half-shifts
  nobody rostered.
- Intervals are half-open, [start, end): someone whose shift ends at 17:00 is off shift at 17:00.
- On-call rotations turn over at 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

UTC = dt.UTC
# Roles that may take expert work unless a caller asks for others (e.g. ("reviewer",) for a review).
DEFAULT_ROLES: tuple[str, ...] = ("expert",)
DEFAULT_LOOKAHEAD = dt.timedelta(days=14)
HOUR = dt.timedelta(hours=1)

Interval = tuple[dt.datetime, dt.datetime]


class ExpertiseSpec(NamedTuple):
    domain_path: str
    proficiency: int  # 1 (novice) to 5 (authority)


class TimeOffSpec(NamedTuple):
    """Whole local days off, both ends included."""

    start_date: dt.date
    end_date: dt.date


@dataclass(frozen=True)
class ShiftSpec:
    """A weekly shift in local wall-clock time; weekday 0 is Monday (as `date.weekday()`)."""

    weekday: int
    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"shift weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday!r}")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class ExpertSnapshot:
    """One roster entry as plain data. `accuracy` maps a domain path, or "" for over all domains, to a
    measured accuracy in [0, 1] or None when nothing has been measured yet."""

    expert_id: int
    user_id: int
    display_name: str
    time_zone: str = "UTC"
    languages: tuple[str, ...] = ()
    role: str = "expert"
    capacity: int = 5
    active: bool = True
    expertise: tuple[ExpertiseSpec, ...] = ()
    shifts: tuple[ShiftSpec, ...] = ()
    time_off: tuple[TimeOffSpec, ...] = ()
    accuracy: Mapping[str, float | None] = field(default_factory=dict)
    open_assignments: int = 0

    def __post_init__(self) -> None:
        # Normalise lists and plain tuples so callers can build snapshots from JSON or the ORM alike.
        _zone(self.time_zone, who=self.display_name)
        object.__setattr__(self, "languages", tuple(self.languages))
        object.__setattr__(self, "expertise", tuple(ExpertiseSpec(*e) for e in self.expertise))
        object.__setattr__(self, "shifts", tuple(s if isinstance(s, ShiftSpec) else ShiftSpec(*s) for s in self.shifts))
        object.__setattr__(self, "time_off", tuple(TimeOffSpec(*t) for t in self.time_off))
        object.__setattr__(self, "accuracy", MappingProxyType(dict(self.accuracy)))

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return _zone(self.time_zone, who=self.display_name)


@dataclass(frozen=True)
class RotationSpec:
    """An on-call rotation: members take turns in order, each for `period_days`, from `starts_on`."""

    rotation_id: int
    name: str
    domain_path: str
    period_days: int
    starts_on: dt.date
    member_expert_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.period_days < 1:
            raise ValueError(f"rotation {self.name!r}: period_days must be at least 1, got {self.period_days!r}")
        object.__setattr__(self, "member_expert_ids", tuple(self.member_expert_ids))


@lru_cache(maxsize=512)
def _cached_zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _zone(name: str, *, who: str = "") -> zoneinfo.ZoneInfo:
    try:
        return _cached_zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{who or 'expert'}: time zone {name!r} is not an IANA time zone (e.g. 'Europe/Berlin')"
        ) from exc


def _require_aware(value: dt.datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def local_to_utc(day: dt.date, at: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant of wall-clock `at` on `day` in `zone`: gaps map forward, ambiguous times use fold=0."""
    return dt.datetime.combine(day, at.replace(tzinfo=None, fold=0), tzinfo=zone).astimezone(UTC)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[list[dt.datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _is_day_off(expert: ExpertSnapshot, day: dt.date) -> bool:
    return any(off.start_date <= day <= off.end_date for off in expert.time_off)


def shift_intervals(expert: ExpertSnapshot, start_utc: dt.datetime, end_utc: dt.datetime) -> list[Interval]:
    """Concrete on-shift intervals in UTC, clipped to [start_utc, end_utc), merged where they touch, sorted.

    Each weekly shift is placed on every local day in range with the rules of the module docstring (DST,
    overnight shifts, time off by the day the shift starts on).
    """
    _require_aware(start_utc, "start_utc")
    _require_aware(end_utc, "end_utc")
    start_utc, end_utc = start_utc.astimezone(UTC), end_utc.astimezone(UTC)
    if end_utc <= start_utc or not expert.shifts:
        return []
    zone = expert.zone
    # A shift lasts at most 24 hours, so one that started the local day before the window can still reach it.
    day = start_utc.astimezone(zone).date() - dt.timedelta(days=1)
    last_day = end_utc.astimezone(zone).date()
    pieces: list[Interval] = []
    while day <= last_day:
        if not _is_day_off(expert, day):
            for shift in expert.shifts:
                if shift.weekday != day.weekday():
                    continue
                end_day = day + dt.timedelta(days=1) if shift.crosses_midnight else day
                begin, finish = local_to_utc(day, shift.start, zone), local_to_utc(end_day, shift.end, zone)
                begin, finish = max(begin, start_utc), min(finish, end_utc)
                if begin < finish:
                    pieces.append((begin, finish))
        day += dt.timedelta(days=1)
    return _merge(pieces)


def is_on_shift(expert: ExpertSnapshot, at: dt.datetime) -> bool:
    """Whether `at` falls inside one of the expert's shifts (ignores `active`, role and capacity)."""
    _require_aware(at, "at")
    return bool(shift_intervals(expert, at, at + dt.timedelta(microseconds=1)))


def next_shift_start(
    expert: ExpertSnapshot, after: dt.datetime, within: dt.timedelta = DEFAULT_LOOKAHEAD
) -> dt.datetime | None:
    """When the expert is next on shift at or after `after` (`after` itself when on shift then), or None
    when no shift starts within `within`."""
    # Day by day, because the first shift is usually close and routing asks this for every expert.
    end = after + within
    chunk_start = after
    while chunk_start < end:
        chunk_end = min(chunk_start + dt.timedelta(days=1), end)
        intervals = shift_intervals(expert, chunk_start, chunk_end)
        if intervals:
            return intervals[0][0]
        chunk_start = chunk_end
    return None


def domain_ancestors(domain_path: str) -> list[str]:
    """`medical/radiology/ct` -> [`medical/radiology/ct`, `medical/radiology`, `medical`]: most specific first."""
    parts = [p for p in domain_path.strip("/").split("/") if p]
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def covers_domain(expertise_path: str, item_domain: str) -> bool:
    """Expertise in a domain covers the domain itself and every sub-domain (`medical` covers
    `medical/radiology`, not `medicalx`); an item without a domain is covered by anyone."""
    item_domain = item_domain.strip("/")
    if not item_domain:
        return True
    expertise_path = expertise_path.strip("/")
    return bool(expertise_path) and (item_domain == expertise_path or item_domain.startswith(expertise_path + "/"))


def covering_expertise(expert: ExpertSnapshot, item_domain: str) -> ExpertiseSpec | None:
    """The expert's most specific expertise covering `item_domain` (its own proficiency wins over a parent's)."""
    covering = [e for e in expert.expertise if covers_domain(e.domain_path, item_domain)]
    return max(covering, key=lambda e: (len(e.domain_path.strip("/").split("/")), e.proficiency), default=None)


def primary_subtag(language: str) -> str:
    """`pt-BR` -> `pt`; BCP 47 tags are case-insensitive, and `_` is accepted as a common misspelling of `-`."""
    return language.strip().replace("_", "-").split("-", 1)[0].lower()


def speaks(expert: ExpertSnapshot, language: str) -> bool:
    """Match on the primary subtag both ways (`pt` speaker takes `pt-BR` items, `pt-BR` speaker takes `pt`);
    an item without a language matches everyone."""
    wanted = primary_subtag(language)
    if not wanted:
        return True
    return any(primary_subtag(spoken) == wanted for spoken in expert.languages)


def qualified(expert: ExpertSnapshot, domain: str, language: str, roles: Collection[str] = DEFAULT_ROLES) -> bool:
    """Active, in one of `roles`, with expertise covering `domain` and speaking `language`.

    Ignores shifts and capacity: those change by the hour, qualification does not. An empty `domain` needs
    no expertise at all.
    """
    if not expert.active or expert.role not in roles:
        return False
    if domain.strip("/") and covering_expertise(expert, domain) is None:
        return False
    return speaks(expert, language)


def on_shift_now(
    experts: Iterable[ExpertSnapshot],
    domain: str,
    language: str,
    at: dt.datetime,
    roles: Collection[str] = DEFAULT_ROLES,
) -> list[ExpertSnapshot]:
    """Qualified experts on shift at `at`, by expert_id."""
    found = [e for e in experts if qualified(e, domain, language, roles) and is_on_shift(e, at)]
    return sorted(found, key=lambda e: e.expert_id)


def next_on_shift(
    experts: Iterable[ExpertSnapshot],
    domain: str,
    language: str,
    after: dt.datetime,
    roles: Collection[str] = DEFAULT_ROLES,
    within: dt.timedelta = DEFAULT_LOOKAHEAD,
) -> tuple[dt.datetime, int] | None:
    """(UTC time, expert_id) of the earliest moment at or after `after` when a qualified expert is on shift
    (`after` itself when someone already is); ties go to the lowest expert_id. None if nobody within `within`."""
    best: tuple[dt.datetime, int] | None = None
    for expert in experts:
        if not qualified(expert, domain, language, roles):
            continue
        start = next_shift_start(expert, after, within)
        if start is not None and (best is None or (start, expert.expert_id) < best):
            best = (start, expert.expert_id)
    return best


def coverage_gaps(
    experts: Iterable[ExpertSnapshot],
    domain: str,
    start: dt.datetime,
    hours: int = 168,
    language: str = "",
    roles: Collection[str] = DEFAULT_ROLES,
) -> list[dt.datetime]:
    """UTC hour starts, over `hours` hours from `start` floored to the hour, in which no qualified expert is
    on shift at all. An hour counts as covered when anyone qualified is on shift for any part of it."""
    _require_aware(start, "start")
    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = first + dt.timedelta(hours=hours)
    covered: set[int] = set()
    for expert in experts:
        if not qualified(expert, domain, language, roles):
            continue
        for begin, finish in shift_intervals(expert, first, end):
            first_hour = (begin - first) // HOUR
            # Intervals are half-open: the last hour touched is the one holding the instant before `finish`.
            last_hour = (finish - first - dt.timedelta(microseconds=1)) // HOUR
            covered.update(range(first_hour, last_hour + 1))
    return [first + dt.timedelta(hours=h) for h in range(hours) if h not in covered]


def on_call(rotation: RotationSpec, at: dt.datetime) -> int | None:
    """expert_id of the member on call at `at`: turns change every `period_days` at 00:00 UTC counting from
    `starts_on`, in member order, wrapping round. None before `starts_on` or when the rotation has no members."""
    _require_aware(at, "at")
    if not rotation.member_expert_ids:
        return None
    elapsed_days = (at.astimezone(UTC).date() - rotation.starts_on).days
    if elapsed_days < 0:
        return None
    turn = elapsed_days // rotation.period_days
    return rotation.member_expert_ids[turn % len(rotation.member_expert_ids)]
