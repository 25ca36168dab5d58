"""The browser tests' set-up helpers that are not obvious: the moment demo_activity sets the demo up at."""
import datetime as dt

import pytest

from experts.availability import is_on_shift
from tests.browser.state import demo_shifts, shift_moment

MONDAY = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize("hours", range(0, 7 * 24, 5))
def test_shift_moment_is_now_in_dr_adas_shift_or_else_the_latest_moment_with_an_hour_of_it_left(hours):
    now = MONDAY + dt.timedelta(hours=hours, minutes=17)
    ada = demo_shifts("dr.ada")
    moment = shift_moment(now)
    assert now - dt.timedelta(days=4) < moment <= now
    assert is_on_shift(ada, moment) and is_on_shift(ada, moment + HOUR - dt.timedelta(seconds=1))
    if is_on_shift(ada, now) and is_on_shift(ada, now + HOUR - dt.timedelta(seconds=1)):
        assert moment == now
    else:
        assert not is_on_shift(ada, moment + HOUR)  # the latest such moment: her shift ends an hour later
