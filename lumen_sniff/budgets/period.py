"""Period arithmetic: which window a time falls in, in a time zone, with DST.

Calendar periods start at the local wall-clock boundary (00:00 for a day,
Monday 00:00 for a week, the 1st for a month) in the budget's time zone, so a
day in Europe/Paris lasts 23 or 25 hours across a DST change. A boundary that
does not exist locally (a clock jumping over midnight) starts at the instant
the clock jumps. Rolling windows are ``(now - width, now]``.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lumen_sniff.budgets.model import Period

__all__ = ["CALENDAR", "parse_period", "window"]

CALENDAR = ("hour", "day", "week", "month")
_ALIASES = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}
_UNITS_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_NS = 10**9


def parse_period(text: str, tz: str = "UTC") -> Period:
    """``hour|day|week|month`` (or ``daily``…) or a rolling width like ``10m``, ``24h``, ``7d``.

    Raises:
        ValueError: with a readable reason.
    """
    word = text.strip().lower()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    word = _ALIASES.get(word, word)
    if word in CALENDAR:
        return Period(text=word, calendar=word, tz=tz)
    match = re.fullmatch(r"(\d+)\s*([smhd])", word)
    if not match or int(match.group(1)) == 0:
        raise ValueError(
            f"period must be hour, day, week, month or a rolling width like 10m, 24h, 7d; "
            f"got {text!r}"
        )
    return Period(text=word, rolling_ns=int(match.group(1)) * _UNITS_NS[match.group(2)], tz=tz)


def window(period: Period, now_ns: int) -> tuple[int, int]:
    """The window containing ``now_ns``: ``[start, end)`` for calendar periods.

    For a rolling window, ``(now - width, now]``, returned as ``(now - width, now)``.
    """
    if period.calendar is None:
        return now_ns - period.rolling_ns, now_ns
    tz = ZoneInfo(period.tz)
    local = dt.datetime.fromtimestamp(now_ns // _NS, tz)
    if period.calendar == "hour":
        # Local hours are whole UTC hours or half/quarter hours (India, Nepal):
        # the floor is taken in local time and the length is always 1 h.
        start = local.replace(minute=0, second=0, microsecond=0)
        start_s = int(start.timestamp())
        if start_s > now_ns // _NS:  # repeated hour at a DST fall-back: the later copy
            start_s -= 3600
        return start_s * _NS, (start_s + 3600) * _NS
    day = local.date()
    if period.calendar == "day":
        first, following = day, day + dt.timedelta(days=1)
    elif period.calendar == "week":
        first = day - dt.timedelta(days=day.weekday())
        following = first + dt.timedelta(days=7)
    else:
        first = day.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(following, tz)


def _midnight(day: dt.date, tz: ZoneInfo) -> int:
    # fold=0 on a missing midnight gives the pre-transition offset, i.e. the
    # instant the clock jumps; on a repeated one, the first occurrence.
    local = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(local.timestamp()) * _NS
