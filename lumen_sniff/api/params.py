"""Query-parameter parsing shared by the routes: times, ranges, status filters.

Every function raises :class:`fastapi.HTTPException` (400) with a message that
names the parameter and shows an accepted form, so a typo never becomes a 500
or a silently empty answer.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.dependencies.utils import get_flat_dependant

from lumen_sniff.store import MAX_NS, EventFilter

__all__ = [
    "Filter",
    "event_filter",
    "parse_status",
    "parse_time",
    "reject_unknown_params",
    "time_range",
]

_UNIT_NS = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_RELATIVE = re.compile(r"^(\d{1,9})\s*([smhdw])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(name: str, text: str, now_ns: int) -> int:
    """Parse an ISO 8601 time, ``now``, or a relative age such as ``30m``, ``24h``, ``7d``.

    Args:
        name: Parameter name, for the error message.
        text: The value. Times without a zone are UTC; a bare date is its midnight.
        now_ns: What "now" is, UNIX ns.

    Returns:
        UNIX nanoseconds (relative ages count back from ``now_ns``; never below 0).

    Raises:
        HTTPException: 400 when the value is neither form.
    """
    value = text.strip()
    if value.lower() == "now":
        return now_ns
    match = _RELATIVE.match(value.lower())
    if match:
        return max(0, now_ns - int(match.group(1)) * _UNIT_NS[match.group(2)])
    try:
        stamp = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            400,
            f"{name}: {text!r} is not a time; use ISO 8601 (2025-03-01T12:00:00Z), "
            "'now', or an age like 30m, 24h, 7d",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - _EPOCH
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if ns < 0:
        raise HTTPException(400, f"{name}: {text!r} is before 1970")
    return min(ns, MAX_NS)


def time_range(since: str | None, until: str | None) -> tuple[int, int]:
    """Resolve ``since``/``until`` to ``[since_ns, until_ns)``; missing ends are open.

    Raises:
        HTTPException: 400 on a bad value or when ``since`` is not before ``until``.
    """
    now = time.time_ns()
    lo = 0 if since is None else parse_time("since", since, now)
    hi = MAX_NS if until is None else parse_time("until", until, now)
    if lo >= hi:
        raise HTTPException(400, f"since ({since}) must be before until ({until})")
    return lo, hi


def parse_status(text: str | None) -> tuple[int | None, bool | None]:
    """Parse the ``status`` filter: an HTTP code, ``error`` or ``ok``.

    Returns:
        ``(exact_code, errors_only)``; both None when no filter was given.

    Raises:
        HTTPException: 400 on any other value.
    """
    if text is None:
        return None, None
    value = text.strip().lower()
    if value in ("error", "ok"):
        return None, value == "error"
    if value.isdigit() and len(value) <= 3:
        return int(value), None
    raise HTTPException(400, f"status: {text!r} must be an HTTP code (0-999), 'error' or 'ok'")


async def reject_unknown_params(request: Request) -> None:
    """Refuse query parameters the route does not declare (a typo must not be ignored).

    Raises:
        HTTPException: 400 naming the unknown parameters and the accepted ones.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = {p.alias for p in get_flat_dependant(dependant).query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise HTTPException(
            400, f"unknown parameter(s): {', '.join(unknown)} (accepted: {accepted})"
        )


def event_filter(
    since: Annotated[
        str | None, Query(description="ISO 8601 time, 'now', or an age: 30m, 24h, 7d.")
    ] = None,
    until: Annotated[str | None, Query(description="Same forms as since; default: open.")] = None,
    provider: str | None = None,
    model: str | None = None,
    process: str | None = None,
    api_key_id: str | None = None,
    tenant: str | None = None,
    service: str | None = None,
    container: str | None = None,
    status: Annotated[str | None, Query(description="HTTP code, 'error' or 'ok'.")] = None,
) -> EventFilter:
    """The filter the event and aggregate routes share: the range and exact field matches."""
    lo, hi = time_range(since, until)
    code, errors_only = parse_status(status)
    return EventFilter(
        since_ns=lo,
        until_ns=hi,
        provider=provider,
        model=model,
        process=process,
        api_key_id=api_key_id,
        tenant=tenant,
        service=service,
        container=container,
        status=code,
        errors_only=errors_only,
    )


Filter = Annotated[EventFilter, Depends(event_filter)]
