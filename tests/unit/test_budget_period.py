"""Calendar and rolling windows: boundaries in time zones, across DST, tiling."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.budgets.period import parse_period, window

NS = 10**9
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
)


def _ns(text: str, tz: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()) * NS


def test_parse_calendar_and_rolling() -> None:
    assert parse_period("daily").calendar == "day"
    assert parse_period("Month", "Europe/Paris").tz == "Europe/Paris"
    assert parse_period("10m").rolling_ns == 600 * NS
    assert parse_period("24h").rolling_ns == 86400 * NS
    for bad in ("0m", "fortnight", "10x", ""):
        with pytest.raises(ValueError, match="period must be"):
            parse_period(bad)
    with pytest.raises(ValueError, match="time zone"):
        parse_period("day", "Mars/Olympus")


def test_day_in_paris_across_dst_is_23_and_25_hours() -> None:
    spring = parse_period("day", "Europe/Paris")
    start, end = window(spring, _ns("2026-03-29T12:00:00", "Europe/Paris"))
    assert (start, end) == (
        _ns("2026-03-29T00:00:00", "Europe/Paris"),
        _ns("2026-03-30T00:00:00", "Europe/Paris"),
    )
    assert end - start == 23 * 3600 * NS
    start, end = window(spring, _ns("2026-10-25T12:00:00", "Europe/Paris"))
    assert end - start == 25 * 3600 * NS


def test_week_starts_monday_and_month_on_the_first() -> None:
    now = _ns("2026-12-03T15:00:00", "UTC")  # a Thursday
    assert window(parse_period("week"), now)[0] == _ns("2026-11-30T00:00:00", "UTC")
    start, end = window(parse_period("month", "America/New_York"), now)
    assert start == _ns("2026-12-01T00:00:00", "America/New_York")
    assert end == _ns("2027-01-01T00:00:00", "America/New_York")
    feb = window(parse_period("month"), _ns("2028-02-29T23:59:59", "UTC"))
    assert feb == (_ns("2028-02-01T00:00:00", "UTC"), _ns("2028-03-01T00:00:00", "UTC"))


def test_hour_in_a_half_hour_zone() -> None:
    start, end = window(parse_period("hour", "Asia/Kolkata"), _ns("2026-05-01T10:45:00", "UTC"))
    assert start == _ns("2026-05-01T10:30:00", "UTC") and end - start == 3600 * NS


def test_rolling_window_ends_now() -> None:
    assert window(parse_period("1m"), 100 * NS) == (40 * NS, 100 * NS)


@settings(max_examples=400, deadline=None)
@given(
    now_s=st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
    tz=st.sampled_from(ZONES),
    kind=st.sampled_from(("hour", "day", "week", "month")),
)
def test_calendar_windows_contain_now_and_tile(now_s: int, tz: str, kind: str) -> None:
    period = parse_period(kind, tz)
    now = now_s * NS
    start, end = window(period, now)
    assert start <= now < end
    assert window(period, end)[0] == end  # the next window starts where this one ends
    assert window(period, start) == (start, end)
    assert window(period, end - 1) == (start, end)
