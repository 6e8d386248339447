"""Filtered aggregates: totals, time series and breakdowns under any event filter.

Strategy: the hourly ``rollups`` hold one row per (dimension, hour, value), so
they can answer a query only when it filters on at most one dimension and
either groups by that same dimension or by nothing (the ``total`` rows, or the
filtered dimension's own rows restricted to one value). Such queries read the
whole hours of the range from the rollups and the partial hours at its edges
from raw events, like :mod:`lumen_sniff.store.queries`. Every other filter
(two dimensions, a status) reads raw events through the per-dimension
``(dim, started_ns)`` indexes: exact, and bounded by the matching events, not
by the table. An unfiltered dashboard over a month of a million events thus
never scans events; a filtered one scans only the filtered value's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiosqlite

from lumen_sniff.store.queries import RAW_SUMS, EventFilter, Totals, split_range, where_clause
from lumen_sniff.store.rows import HOUR_NS
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = ["Cell", "grouped"]

Cell = tuple[int, str]
"""(bucket start in UNIX ns, or 0 for one bucket; group value, '' for none)."""

_ROLLUP_SUMS = ", ".join(f"SUM({c})" for c in ROLLUP_SUMS)


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
    conn: aiosqlite.Connection, f: EventFilter, group_by: str | None, width_ns: int | None
) -> dict[Cell, Totals]:
    """Sum the events matching ``f`` per (bucket, group).

    Args:
        conn: A read connection.
        f: The filter, time range included.
        group_by: One of :data:`GROUP_DIMS`, or None for no grouping (group '').
        width_ns: Bucket width (epoch-aligned), or None for one bucket (start 0).

    Raises:
        ValueError: ``group_by`` is not a known dimension.
    """
    if group_by is not None and group_by not in GROUP_DIMS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_DIMS)}")
    cells: dict[Cell, Totals] = {}
    if f.since_ns >= f.until_ns:
        return cells
    plan = _rollup_plan(f, group_by)
    if plan is None or (width_ns is not None and width_ns < HOUR_NS):
        edges, hours = [(f.since_ns, f.until_ns)], None
    else:
        edges, hours = split_range(f.since_ns, f.until_ns)
    t_raw = "0" if width_ns is None else f"(started_ns / {width_ns}) * {width_ns}"
    g_raw = "''" if group_by is None else f"COALESCE({group_by}, '')"
    for lo, hi in edges:
        where, params = where_clause(replace(f, since_ns=lo, until_ns=hi))
        sql = f"SELECT {t_raw}, {g_raw}, {RAW_SUMS} FROM events WHERE {where} GROUP BY 1, 2"
        await _merge(conn, sql, params, cells)
    if hours is not None and plan is not None:
        dim, value = plan
        t_roll = "0" if width_ns is None else f"(bucket_ns / {width_ns}) * {width_ns}"
        g_roll = "''" if group_by is None else "value"
        sql = (
            f"SELECT {t_roll}, {g_roll}, {_ROLLUP_SUMS} FROM rollups "
            "WHERE dim = ? AND bucket_ns >= ? AND bucket_ns < ?"
        )
        params = [dim, *hours]
        if value is not None:
            sql += " AND value = ?"
            params.append(value)
        await _merge(conn, sql + " GROUP BY 1, 2", params, cells)
    return cells


async def _merge(
    conn: aiosqlite.Connection, sql: str, params: Sequence[Any], cells: dict[Cell, Totals]
) -> None:
    async with conn.execute(sql, params) as cur:
        rows = await cur.fetchall()
    for row in rows:
        key = (int(row[0]), str(row[1]))
        cell = cells.get(key)
        if cell is None:
            cells[key] = Totals.from_row(row[2:])
        else:
            cell.add(row[2:])
