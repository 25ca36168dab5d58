"""Availability arithmetic, table-driven, no database. Expected UTC times are worked out by hand from the
offsets: Berlin CET +1 / CEST +2 (switches 2026-03-29 and 2026-10-25), New York EST -5 / EDT -4
(switches 2026-03-08 and 2026-11-01)."""

import datetime as dt

import pytest

from experts.availability import (
    ExpertSnapshot,
    RotationSpec,
    ShiftSpec,
    coverage_gaps,
    covers_domain,
    is_on_shift,
    next_on_shift,
    on_call,
    on_shift_now,
    qualified,
    shift_intervals,
    speaks,
)

UTC = dt.UTC
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def t(hour: int, minute: int = 0) -> dt.time:
    return dt.time(hour, minute)


def expert(expert_id: int = 1, *, tz: str = "UTC", shifts=(), time_off=(), **kw) -> ExpertSnapshot:
    kw.setdefault("expertise", (("medical", 3),))
    kw.setdefault("languages", ("en",))
    return ExpertSnapshot(
        expert_id=expert_id,
        user_id=100 + expert_id,
        display_name=f"E{expert_id}",
        time_zone=tz,
        shifts=tuple(ShiftSpec(*s) for s in shifts),
        time_off=time_off,
        **kw,
    )


def day_window(y: int, m: int, d: int) -> tuple[dt.datetime, dt.datetime]:
    """Two UTC days from midnight before the local day, wide enough for any zone used here."""
    start = utc(y, m, d) - dt.timedelta(days=1)
    return start, start + dt.timedelta(days=3)


NINE_TO_FIVE = [(wd, t(9), t(17)) for wd in range(7)]


@pytest.mark.parametrize(
    "tz, day, expected",
    [
        # Berlin, spring: the same local 09:00-17:00 moves one hour earlier in UTC.
        ("Europe/Berlin", (2026, 3, 27), (utc(2026, 3, 27, 8), utc(2026, 3, 27, 16))),
        ("Europe/Berlin", (2026, 3, 29), (utc(2026, 3, 29, 7), utc(2026, 3, 29, 15))),
        ("Europe/Berlin", (2026, 3, 30), (utc(2026, 3, 30, 7), utc(2026, 3, 30, 15))),
        # Berlin, autumn: back one hour later.
        ("Europe/Berlin", (2026, 10, 23), (utc(2026, 10, 23, 7), utc(2026, 10, 23, 15))),
        ("Europe/Berlin", (2026, 10, 26), (utc(2026, 10, 26, 8), utc(2026, 10, 26, 16))),
        # New York, spring and autumn.
        ("America/New_York", (2026, 3, 6), (utc(2026, 3, 6, 14), utc(2026, 3, 6, 22))),
        ("America/New_York", (2026, 3, 9), (utc(2026, 3, 9, 13), utc(2026, 3, 9, 21))),
        ("America/New_York", (2026, 10, 30), (utc(2026, 10, 30, 13), utc(2026, 10, 30, 21))),
        ("America/New_York", (2026, 11, 2), (utc(2026, 11, 2, 14), utc(2026, 11, 2, 22))),
    ],
)
def test_local_day_shift_maps_to_utc_across_dst(tz, day, expected):
    start = utc(*day)
    # The window is exactly the UTC day; these shifts lie wholly inside it.
    assert shift_intervals(expert(tz=tz, shifts=NINE_TO_FIVE), start, start + dt.timedelta(days=1)) == [expected]


@pytest.mark.parametrize(
    "tz, saturday, expected",
    [
        # 22:00-06:00 on the spring-forward night is 7 hours long, on the fall-back night 9 hours.
        ("Europe/Berlin", (2026, 3, 28), (utc(2026, 3, 28, 21), utc(2026, 3, 29, 4))),
        ("Europe/Berlin", (2026, 10, 24), (utc(2026, 10, 24, 20), utc(2026, 10, 25, 5))),
        ("America/New_York", (2026, 3, 7), (utc(2026, 3, 8, 3), utc(2026, 3, 8, 10))),
        ("America/New_York", (2026, 10, 31), (utc(2026, 11, 1, 2), utc(2026, 11, 1, 11))),
        # An ordinary Saturday night for comparison: 8 hours.
        ("Europe/Berlin", (2026, 3, 21), (utc(2026, 3, 21, 21), utc(2026, 3, 22, 5))),
    ],
)
def test_overnight_shift_on_the_dst_night(tz, saturday, expected):
    e = expert(tz=tz, shifts=[(SAT, t(22), t(6))])
    assert shift_intervals(e, *day_window(*saturday)) == [expected]


@pytest.mark.parametrize(
    "start, end, expected",
    [
        # 01:30 exists (CET), 03:00 exists (CEST): only 30 minutes pass.
        (t(1, 30), t(3), (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1))),
        # 02:30 does not exist: it maps forward to 03:30 CEST = 01:30 UTC.
        (t(2, 30), t(4), (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))),
    ],
)
def test_spring_forward_gap(start, end, expected):
    e = expert(tz="Europe/Berlin", shifts=[(SUN, start, end)])
    assert shift_intervals(e, *day_window(2026, 3, 29)) == [expected]


@pytest.mark.parametrize(
    "start, end, expected",
    [
        # 02:30 happens twice; fold=0 takes the first (CEST, 00:30 UTC), so the shift runs 2.5 hours.
        (t(2, 30), t(4), (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3))),
        (t(1, 30), t(3), (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2))),
    ],
)
def test_fall_back_ambiguous_time_uses_first_occurrence(start, end, expected):
    e = expert(tz="Europe/Berlin", shifts=[(SUN, start, end)])
    assert shift_intervals(e, *day_window(2026, 10, 25)) == [expected]


def test_shift_that_collapses_inside_the_gap_is_dropped():
    # 02:30 -> 03:30 CEST, 03:00 CEST: ends before it starts once mapped, so there is no shift that day.
    e = expert(tz="Europe/Berlin", shifts=[(SUN, t(2, 30), t(3))])
    assert shift_intervals(e, *day_window(2026, 3, 29)) == []
    assert shift_intervals(e, *day_window(2026, 3, 22)) == [(utc(2026, 3, 22, 1, 30), utc(2026, 3, 22, 2))]


def test_equal_start_and_end_is_a_24_hour_shift():
    e = expert(shifts=[(MON, t(6), t(6))])
    assert shift_intervals(e, utc(2026, 3, 30), utc(2026, 4, 1)) == [(utc(2026, 3, 30, 6), utc(2026, 3, 31, 6))]


def test_intervals_are_clipped_to_the_window_and_merged():
    e = expert(shifts=[(MON, t(8), t(12)), (MON, t(12), t(14)), (MON, t(20), t(2))])
    got = shift_intervals(e, utc(2026, 3, 30, 10), utc(2026, 3, 31, 1))
    assert got == [(utc(2026, 3, 30, 10), utc(2026, 3, 30, 14)), (utc(2026, 3, 30, 20), utc(2026, 3, 31, 1))]


def test_a_sunday_night_shift_reaches_into_a_monday_window():
    e = expert(tz="Europe/Berlin", shifts=[(SUN, t(22), t(6))])
    assert shift_intervals(e, utc(2026, 3, 30), utc(2026, 3, 31)) == [(utc(2026, 3, 30), utc(2026, 3, 30, 4))]


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        shift_intervals(expert(shifts=NINE_TO_FIVE), dt.datetime(2026, 3, 30), utc(2026, 3, 31))


def test_unknown_time_zone_is_refused_when_the_snapshot_is_built():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        expert(tz="Mars/Olympus")


class TestTimeOff:
    # Berlin, CET: Friday 22:00 local is 21:00 UTC.
    SHIFTS = [(FRI, t(22), t(6)), (SAT, t(9), t(17)), (SUN, t(9), t(17))]
    WINDOW = (utc(2026, 3, 27), utc(2026, 3, 29))

    def test_day_off_removes_the_shifts_of_that_day(self):
        e = expert(tz="Europe/Berlin", shifts=self.SHIFTS, time_off=[(dt.date(2026, 3, 28), dt.date(2026, 3, 28))])
        # Friday night is kept in full (it belongs to Friday), Saturday's day shift is gone.
        assert shift_intervals(e, *self.WINDOW) == [(utc(2026, 3, 27, 21), utc(2026, 3, 28, 5))]

    def test_day_off_removes_the_overnight_shift_starting_on_it_including_after_midnight(self):
        e = expert(tz="Europe/Berlin", shifts=self.SHIFTS, time_off=[(dt.date(2026, 3, 27), dt.date(2026, 3, 27))])
        assert shift_intervals(e, *self.WINDOW) == [(utc(2026, 3, 28, 8), utc(2026, 3, 28, 16))]

    def test_ranges_include_both_ends(self):
        e = expert(tz="Europe/Berlin", shifts=self.SHIFTS, time_off=[(dt.date(2026, 3, 27), dt.date(2026, 3, 28))])
        assert shift_intervals(e, *self.WINDOW) == []
        assert is_on_shift(e, utc(2026, 3, 29, 10))


@pytest.mark.parametrize(
    "at, expected",
    [
        (utc(2026, 3, 27, 7, 59), False),
        (utc(2026, 3, 27, 8), True),
        (utc(2026, 3, 27, 15, 59, 59), True),
        (utc(2026, 3, 27, 16), False),  # half-open: off at the end time
        (dt.datetime(2026, 3, 27, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), True),  # any aware zone works
    ],
)
def test_is_on_shift(at, expected):
    assert is_on_shift(expert(tz="Europe/Berlin", shifts=NINE_TO_FIVE), at) is expected


@pytest.mark.parametrize(
    "expertise, item, expected",
    [
        ("medical", "medical/radiology", True),
        ("medical", "medical/radiology/ct", True),
        ("medical", "medical", True),
        ("medical/radiology", "medical", False),
        ("medical/radiology", "medical/cardiology", False),
        ("med", "medical", False),
        ("medical", "", True),
        ("medical/", "medical/radiology", True),
        ("", "medical", False),
    ],
)
def test_covers_domain(expertise, item, expected):
    assert covers_domain(expertise, item) is expected


@pytest.mark.parametrize(
    "spoken, item, expected",
    [
        (("pt",), "pt-BR", True),
        (("pt-BR",), "pt", True),
        (("pt-PT",), "pt-BR", True),
        (("PT-br",), "pt", True),
        (("en", "de"), "de-AT", True),
        (("en",), "es", False),
        (("en",), "", True),
        ((), "", True),
        ((), "en", False),
    ],
)
def test_speaks(spoken, item, expected):
    assert speaks(expert(languages=spoken), item) is expected


@pytest.mark.parametrize(
    "changes, domain, language, roles, expected",
    [
        ({}, "medical/radiology", "en-GB", ("expert",), True),
        ({"active": False}, "medical", "en", ("expert",), False),
        ({"role": "crowd"}, "medical", "en", ("expert",), False),
        ({"role": "reviewer"}, "medical", "en", ("expert",), False),
        ({"role": "reviewer"}, "medical", "en", ("reviewer",), True),
        ({}, "legal", "en", ("expert",), False),
        ({}, "medical", "fr", ("expert",), False),
        ({"expertise": ()}, "", "en", ("expert",), True),
    ],
)
def test_qualified(changes, domain, language, roles, expected):
    assert qualified(expert(**changes), domain, language, roles) is expected


class TestWhoIsOnShift:
    def roster(self):
        return [
            expert(3, tz="Europe/Berlin", shifts=NINE_TO_FIVE),  # 07-15 UTC after 2026-03-29
            expert(1, tz="America/New_York", shifts=NINE_TO_FIVE),  # 13-21 UTC
            expert(2, tz="America/New_York", shifts=NINE_TO_FIVE, languages=("fr",)),
            expert(4, tz="Asia/Tokyo", shifts=NINE_TO_FIVE, expertise=(("legal", 4),)),  # 00-08 UTC
        ]

    def test_on_shift_now_filters_by_qualification_and_time(self):
        ids = [e.expert_id for e in on_shift_now(self.roster(), "medical", "en", utc(2026, 3, 30, 14))]
        assert ids == [1, 3]
        assert [e.expert_id for e in on_shift_now(self.roster(), "medical", "en", utc(2026, 3, 30, 16))] == [1]

    def test_next_on_shift_is_the_earliest_qualified_start(self):
        # At 22:00 UTC Monday nobody medical/en is on; Berlin starts 07:00 UTC Tuesday, New York 13:00.
        assert next_on_shift(self.roster(), "medical", "en", utc(2026, 3, 30, 22)) == (utc(2026, 3, 31, 7), 3)

    def test_next_on_shift_is_now_when_someone_is_on(self):
        assert next_on_shift(self.roster(), "medical", "en", utc(2026, 3, 30, 14, 5)) == (utc(2026, 3, 30, 14, 5), 1)

    def test_next_on_shift_none_when_nobody_within_the_horizon(self):
        assert next_on_shift(self.roster(), "medical", "ja", utc(2026, 3, 30)) is None
        later = [expert(1, shifts=[(MON, t(9), t(10))])]
        assert next_on_shift(later, "medical", "en", utc(2026, 3, 31), within=dt.timedelta(days=3)) is None
        assert next_on_shift(later, "medical", "en", utc(2026, 3, 31)) == (utc(2026, 4, 6, 9), 1)


class TestCoverageGaps:
    def test_one_berlin_day_shift_leaves_the_utc_night_uncovered(self):
        roster = [expert(tz="Europe/Berlin", shifts=NINE_TO_FIVE)]
        gaps = coverage_gaps(roster, "medical", utc(2026, 3, 30), hours=24)
        assert [g.hour for g in gaps] == [0, 1, 2, 3, 4, 5, 6, 15, 16, 17, 18, 19, 20, 21, 22, 23]

    def test_gaps_are_per_domain(self):
        roster = [expert(tz="Europe/Berlin", shifts=NINE_TO_FIVE)]
        assert len(coverage_gaps(roster, "legal", utc(2026, 3, 30), hours=24)) == 24
        assert len(coverage_gaps(roster, "medical/radiology", utc(2026, 3, 30), hours=24)) == 16

    def test_a_partly_covered_hour_is_not_a_gap(self):
        # Kolkata is UTC+5:30: 09:00-17:00 local is 03:30-11:30 UTC.
        roster = [expert(tz="Asia/Kolkata", shifts=NINE_TO_FIVE)]
        gaps = coverage_gaps(roster, "medical", utc(2026, 3, 30, 0, 20), hours=24)
        assert gaps[0] == utc(2026, 3, 30)  # the start is floored to the hour
        assert [g.hour for g in gaps] == [0, 1, 2, *range(12, 24)]

    def test_two_time_zones_close_the_gaps_over_a_week(self):
        roster = [
            expert(1, tz="Europe/Berlin", shifts=[(wd, t(6), t(18)) for wd in range(7)]),  # 04-16 UTC
            expert(2, tz="America/Los_Angeles", shifts=[(wd, t(9), t(21)) for wd in range(7)]),  # 16-04 UTC
        ]
        assert coverage_gaps(roster, "medical", utc(2026, 4, 6), hours=168) == []


class TestOnCall:
    ROTATION = RotationSpec(1, "radiology", "medical/radiology", 7, dt.date(2026, 3, 2), (10, 20, 30))

    @pytest.mark.parametrize(
        "at, expected",
        [
            (utc(2026, 3, 2), 10),
            (utc(2026, 3, 8, 23, 59), 10),
            (utc(2026, 3, 9), 20),
            (utc(2026, 3, 16, 12), 30),
            (utc(2026, 3, 23), 10),  # wrapped round
            # 00:30 at UTC+2 is still 8 March in UTC, so still the first member's turn.
            (dt.datetime(2026, 3, 9, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), 10),
            (utc(2026, 3, 1, 23), None),  # not started yet
        ],
    )
    def test_turns(self, at, expected):
        assert on_call(self.ROTATION, at) == expected

    def test_empty_rotation_has_nobody(self):
        assert on_call(RotationSpec(2, "x", "medical", 7, dt.date(2026, 1, 1), ()), utc(2026, 3, 1)) is None

    def test_period_must_be_positive(self):
        with pytest.raises(ValueError, match="period_days"):
            RotationSpec(3, "x", "medical", 0, dt.date(2026, 1, 1), (1,))
