"""Filtered aggregates: totals, time series and breakdowns under any event filter.

Strategy: the hour and minute rollups (:mod:`lumen_sniff.store.rollup`) hold
one row per (dimension, bucket, value), so they answer a query exactly when it
filters on at most one dimension and either groups by that same dimension or
by nothing (the ``total`` rows, or the filtered dimension's own rows
restricted to one value), with no status filter. Such a query reads the whole
hours of its range from the hourly rollups (when its buckets are whole
hours), the whole minutes around them from the minute rollups, and only the
partial minutes at its two ends from raw events. Every other filter (two
dimensions, a status, a bucket that is not whole minutes) reads raw events
through the per-dimension ``(dim, started_ns)`` indexes: exact, and bounded by
the matching events, not by the table. An unfiltered dashboard over a month of
a million events thus never scans events, even in minute buckets.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiosqlite

from lumen_sniff.store.queries import RAW_SUMS, EventFilter, Totals, where_clause
from lumen_sniff.store.rollup import TABLES, cover, floored, units_for
from lumen_sniff.store.rows import MINUTE_NS
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = ["Cell", "Sums", "grouped", "grouped_sums"]

Cell = tuple[int, str]
"""(bucket start in UNIX ns, or 0 for one bucket; group value, '' for none)."""
Sums = tuple[int, ...]
"""One cell's sums in :data:`ROLLUP_SUMS` order (ints; no NULLs)."""

_ROLLUP_SUMS = ", ".join(f"SUM({c})" for c in ROLLUP_SUMS)
_ROLLUP_COLS = ", ".join(ROLLUP_SUMS)


def _dim_filters(f: EventFilter) -> dict[str, str]:
    return {d: v for d in GROUP_DIMS if (v := getattr(f, d, None)) is not None}


def _rollup_plan(f: EventFilter, group_by: str | None) -> tuple[str, str | None] | None:
    """The rollup ``(dim, value)`` rows that answer the query, or None (raw only)."""
    if f.status is not None or f.errors_only is not None:
        return None
    dims = _dim_filters(f)
    if not dims:
        return (group_by or "total", None)
    if len(dims) == 1:
        ((dim, value),) = dims.items()
        if group_by is None or group_by == dim:
            return (dim, value)
    return None


async def grouped(
    conn: aiosqlite.Connection,
    f: EventFilter,
    group_by: str | None,
    width_ns: int | None,
    minute_floor_ns: int = 0,
) -> dict[Cell, Totals]:
    """:func:`grouped_sums` as :class:`Totals`."""
    cells = await grouped_sums(conn, f, group_by, width_ns, minute_floor_ns)
    return {key: Totals.from_row(sums) for key, sums in cells.items()}


async def grouped_sums(
    conn: aiosqlite.Connection,
    f: EventFilter,
    group_by: str | None,
    width_ns: int | None,
    minute_floor_ns: int = 0,
) -> dict[Cell, Sums]:
    """Sum the events matching ``f`` per (bucket, group), as plain tuples.

    A day of minute buckets is ~10,000 cells: tuples straight from the rows,
    not an object per cell, keep /api/usage's cost near the query's (issue 12).

    Args:
        conn: A read connection.
        f: The filter, time range included.
        group_by: One of :data:`GROUP_DIMS`, or None for no grouping (group '').
        width_ns: Bucket width (epoch-aligned), or None for one bucket (start 0).
        minute_floor_ns: Minute rollups before this are pruned or being pruned
            (minute retention): minutes before it, or before the table's
            oldest minute, are read from raw events.

    Raises:
        ValueError: ``group_by`` is not a known dimension.
    """
    if group_by is not None and group_by not in GROUP_DIMS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_DIMS)}")
    cells: dict[Cell, Sums] = {}
    if f.since_ns >= f.until_ns:
        return cells
    plan = _rollup_plan(f, group_by)
    units = () if plan is None else units_for(width_ns)
    t_raw = "0" if width_ns is None else f"(started_ns / {width_ns}) * {width_ns}"
    g_raw = "''" if group_by is None else f"COALESCE({group_by}, '')"
    t_roll = "0" if width_ns is None else f"(bucket_ns / {width_ns}) * {width_ns}"
    g_roll = "''" if group_by is None else "value"
    spans = cover(f.since_ns, f.until_ns, units)
    if MINUTE_NS in units:
        floor = max(minute_floor_ns, await _oldest_minute(conn, f.until_ns))
        spans = floored(spans, MINUTE_NS, floor)
    for unit, lo, hi in spans:
        if unit is None or plan is None:
            where, params = where_clause(replace(f, since_ns=lo, until_ns=hi))
            sql = f"SELECT {t_raw}, {g_raw}, {RAW_SUMS} FROM events WHERE {where} GROUP BY 1, 2"
            await _merge(conn, sql, params, cells, exact=False)
            continue
        dim, value = plan
        rest = " AND value = ?" if value is not None else ""
        params = [dim, lo, hi] if value is None else [dim, lo, hi, value]
        where = f"dim = ? AND bucket_ns >= ? AND bucket_ns < ?{rest}"
        if unit == width_ns and group_by is not None:
            # One row per (bucket, value) already: no grouping, no sort.
            sql = f"SELECT bucket_ns, value, {_ROLLUP_COLS} FROM {TABLES[unit]} WHERE {where}"
        else:
            sql = (
                f"SELECT {t_roll}, {g_roll}, {_ROLLUP_SUMS} FROM {TABLES[unit]} "
                f"WHERE {where} GROUP BY 1, 2"
            )
        await _merge(conn, sql, params, cells, exact=True)
    return cells


async def _oldest_minute(conn: aiosqlite.Connection, default: int) -> int:
    """The oldest minute in the minute rollups (``default`` when there is none).

    Minute rollups older than the minute retention are pruned, maybe by
    another process (the daemon, while a CLI reads), so the table's own edge
    bounds what it can answer: a minute before it is read from raw events.
    """
    sql = f"SELECT MIN(bucket_ns) FROM {TABLES[MINUTE_NS]} WHERE dim = 'total'"
    async with conn.execute(sql) as cur:
        row = await cur.fetchone()
    return default if row is None or row[0] is None else int(row[0])


async def _merge(
    conn: aiosqlite.Connection,
    sql: str,
    params: Sequence[Any],
    cells: dict[Cell, Sums],
    *,
    exact: bool,
) -> None:
    """Add the ``(bucket, group, *sums)`` rows of ``sql`` to ``cells``.

    ``exact``: the sums are already ints, never NULL (rollup columns are NOT
    NULL); raw aggregates have TOTAL()'s floats and a NULL cost sum.
    """
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    for row in rows:
        key = (int(row[0]), str(row[1]))
        sums = row[2:] if exact else tuple(int(v or 0) for v in row[2:])
        old = cells.get(key)
        cells[key] = sums if old is None else tuple(map(operator.add, old, sums))
