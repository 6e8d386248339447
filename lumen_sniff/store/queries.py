"""Read queries: summaries and usage series from rollups + raw edges, event lists.

Strategy for long ranges: a range ``[since, until)`` is split into the whole
hours inside it, read from the hourly ``rollups``, and at most two partial
hours at its edges, read from raw ``events`` through the time index. A month
summary thus reads ~720 rollup rows plus at most two hours of events, whatever
the number of stored events. Minute buckets need raw events and read them all.

Every function takes the store's read connection and returns plain records;
the API turns them into JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiosqlite

from lumen_sniff.model import UsageEvent
from lumen_sniff.store.rows import EVENT_COLUMNS, HOUR_NS, event_from_row, usd_from_pusd
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = [
    "BUCKETS_NS",
    "MAX_NS",
    "RAW_SUMS",
    "EventFilter",
    "Series",
    "Totals",
    "export_events",
    "list_events",
    "split_range",
    "summarize",
    "usage_series",
    "where_clause",
]

MAX_NS = 2**63 - 1
"""Open upper bound of a time range."""

BUCKETS_NS: dict[str, int] = {
    "minute": 60_000_000_000,
    "hour": HOUR_NS,
    "day": 24 * HOUR_NS,
}
"""Usage bucket widths; buckets are aligned to the UNIX epoch (UTC days)."""

RAW_SUMS = (
    "COUNT(*), TOTAL(error), TOTAL(input_tokens), TOTAL(output_tokens), "
    "TOTAL(cache_read_tokens), TOTAL(cache_write_tokens), TOTAL(reasoning_tokens), "
    "SUM(cost_pusd), TOTAL(priced), COUNT(*) - TOTAL(priced), TOTAL(estimated)"
)
"""Raw-event aggregates in ROLLUP_SUMS order (TOTAL is float but exact below 2**53)."""

_ROLLUP_SUMS = ", ".join(f"SUM({c})" for c in ROLLUP_SUMS)
_PUSD_PER_USD = 10**12


@dataclass(kw_only=True, slots=True)
class Totals:
    """Sums over a set of events. Cost covers priced events only."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_pusd: int = 0
    """Cost of the priced events, integer pico-dollars."""
    priced: int = 0
    """Events with a cost."""
    unpriced: int = 0
    """Events without a cost (not counted as $0)."""
    estimated: int = 0
    """Events whose usage was estimated."""

    @property
    def cost_usd(self) -> Decimal:
        """Exact cost of the priced events."""
        return usd_from_pusd(self.cost_pusd)

    @classmethod
    def from_row(cls, v: Sequence[Any]) -> Totals:
        """Build from one aggregate row in ROLLUP_SUMS order (NULL sums count as 0)."""
        return cls(
            requests=int(v[0] or 0),
            errors=int(v[1] or 0),
            input_tokens=int(v[2] or 0),
            output_tokens=int(v[3] or 0),
            cache_read_tokens=int(v[4] or 0),
            cache_write_tokens=int(v[5] or 0),
            reasoning_tokens=int(v[6] or 0),
            cost_pusd=int(v[7] or 0),
            priced=int(v[8] or 0),
            unpriced=int(v[9] or 0),
            estimated=int(v[10] or 0),
        )

    def add(self, values: Sequence[Any]) -> None:
        """Add one aggregate row in ROLLUP_SUMS order (NULL sums count as 0)."""
        for name, value in zip(ROLLUP_SUMS, values, strict=True):
            if value:
                setattr(self, name, getattr(self, name) + int(value))

    def to_dict(self, *, null_cost_when_unpriced: bool = False) -> dict[str, object]:
        """JSON-safe form: requests, errors, cost_usd, token sums, unpriced/estimated counts."""
        # int / int is correctly rounded, so this is float(self.cost_usd) without
        # building a Decimal per point (a day of minute points has thousands).
        cost: float | None = self.cost_pusd / _PUSD_PER_USD
        if null_cost_when_unpriced and self.priced == 0:
            cost = None
        return {
            "requests": self.requests,
            "errors": self.errors,
            "cost_usd": cost,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "unpriced_requests": self.unpriced,
            "estimated_requests": self.estimated,
        }


@dataclass(kw_only=True, slots=True)
class Series:
    """One group's usage over time."""

    group: str | None
    """The group's value; None when the events had none."""
    points: dict[int, Totals] = field(default_factory=dict)
    """Bucket start (UNIX ns) → sums."""

    @property
    def requests(self) -> int:
        """Requests over every point."""
        return sum(p.requests for p in self.points.values())


@dataclass(frozen=True, kw_only=True, slots=True)
class EventFilter:
    """Which events to list: every given field must match exactly."""

    since_ns: int = 0
    until_ns: int = MAX_NS
    provider: str | None = None
    model: str | None = None
    process: str | None = None
    api_key_id: str | None = None
    tenant: str | None = None
    service: str | None = None
    container: str | None = None
    status: int | None = None
    """Exact HTTP status."""
    errors_only: bool | None = None
    """True: only errors; False: only successes; None: both."""


def split_range(
    since_ns: int, until_ns: int
) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """Split ``[since, until)`` into raw-event edges and a whole-hour rollup range."""
    first_hour = -(-since_ns // HOUR_NS) * HOUR_NS
    last_hour = until_ns - until_ns % HOUR_NS
    if first_hour >= last_hour:
        return [(since_ns, until_ns)], None
    edges = []
    if since_ns < first_hour:
        edges.append((since_ns, first_hour))
    if last_hour < until_ns:
        edges.append((last_hour, until_ns))
    return edges, (first_hour, last_hour)


async def summarize(conn: aiosqlite.Connection, since_ns: int, until_ns: int) -> Totals:
    """Sum every event started in ``[since_ns, until_ns)``."""
    totals = Totals()
    if since_ns >= until_ns:
        return totals
    edges, hours = split_range(since_ns, until_ns)
    for lo, hi in edges:
        async with conn.execute(
            f"SELECT {RAW_SUMS} FROM events WHERE started_ns >= ? AND started_ns < ?", (lo, hi)
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            totals.add(row)
    if hours is not None:
        async with conn.execute(
            f"SELECT {_ROLLUP_SUMS} FROM rollups "
            "WHERE dim = 'total' AND bucket_ns >= ? AND bucket_ns < ?",
            hours,
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            totals.add(row)
    return totals


async def usage_series(
    conn: aiosqlite.Connection, group_by: str, bucket: str, since_ns: int, until_ns: int
) -> list[Series]:
    """Per-group, per-bucket sums over ``[since_ns, until_ns)``, busiest group first.

    Points are sparse: a bucket with no events has no point.

    Raises:
        ValueError: ``group_by`` or ``bucket`` is not a known name.
    """
    if group_by not in GROUP_DIMS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_DIMS)}")
    if bucket not in BUCKETS_NS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS_NS)}")
    width = BUCKETS_NS[bucket]
    series: dict[str, Series] = {}
    if since_ns >= until_ns:
        return []
    if width < HOUR_NS:
        edges, hours = [(since_ns, until_ns)], None
    else:
        edges, hours = split_range(since_ns, until_ns)
    for lo, hi in edges:
        sql = (
            f"SELECT (started_ns / {width}) * {width} AS t, COALESCE({group_by}, '') AS g, "
            f"{RAW_SUMS} FROM events WHERE started_ns >= ? AND started_ns < ? GROUP BY t, g"
        )
        await _merge(conn, sql, (lo, hi), series)
    if hours is not None:
        if width == HOUR_NS:
            # Rollup rows are already one per (hour, value): no grouping (and no sort).
            sql = (
                f"SELECT bucket_ns, value, {', '.join(ROLLUP_SUMS)} FROM rollups "
                "WHERE dim = ? AND bucket_ns >= ? AND bucket_ns < ?"
            )
        else:
            sql = (
                f"SELECT (bucket_ns / {width}) * {width} AS t, value, {_ROLLUP_SUMS} "
                "FROM rollups WHERE dim = ? AND bucket_ns >= ? AND bucket_ns < ? GROUP BY t, value"
            )
        await _merge(conn, sql, (group_by, *hours), series)
    return sorted(series.values(), key=lambda s: (-s.requests, s.group or ""))


async def _merge(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any], series: dict[str, Series]
) -> None:
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    for row in rows:
        t, group = int(row[0]), row[1]
        one = series.get(group)
        if one is None:
            one = series[group] = Series(group=group or None)
        point = one.points.get(t)
        if point is None:
            one.points[t] = Totals.from_row(row[2:])
        else:
            point.add(row[2:])


def where_clause(f: EventFilter) -> tuple[str, list[Any]]:
    """SQL condition on ``events`` and its parameters for every field ``f`` sets."""
    clauses = ["started_ns >= ?", "started_ns < ?"]
    params: list[Any] = [f.since_ns, f.until_ns]
    for name in (*GROUP_DIMS, "status"):
        value = getattr(f, name, None)
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    if f.errors_only is not None:
        clauses.append("error = ?")
        params.append(int(f.errors_only))
    return " AND ".join(clauses), params


async def list_events(conn: aiosqlite.Connection, f: EventFilter, limit: int) -> list[UsageEvent]:
    """The newest ``limit`` events matching ``f``, newest first."""
    where, params = where_clause(f)
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {where} "
        "ORDER BY started_ns DESC, seq DESC LIMIT ?"
    )
    async with conn.execute(sql, (*params, limit)) as cur:
        rows = await cur.fetchall()
    return [event_from_row(dict(zip(EVENT_COLUMNS, r, strict=True))) for r in rows]


_PAGE_COLUMNS = (*EVENT_COLUMNS, "seq")


async def export_events(
    conn: aiosqlite.Connection, f: EventFilter, page: int = 5000
) -> AsyncIterator[UsageEvent]:
    """Every event matching ``f``, oldest first, read in pages (keyset pagination)."""
    where, params = where_clause(f)
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)}, seq FROM events WHERE {where} "
        "AND (started_ns > ? OR (started_ns = ? AND seq > ?)) "
        "ORDER BY started_ns, seq LIMIT ?"
    )
    last_ns, last_seq = -1, -1
    while True:
        async with conn.execute(sql, (*params, last_ns, last_ns, last_seq, page)) as cur:
            rows = list(await cur.fetchall())
        for row in rows:
            yield event_from_row(dict(zip(_PAGE_COLUMNS, row, strict=True)))
        if len(rows) < page:
            return
        last = dict(zip(_PAGE_COLUMNS, rows[-1], strict=True))
        last_ns, last_seq = last["started_ns"], last["seq"]
