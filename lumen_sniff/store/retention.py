"""Retention: delete events and rollups older than N days, a slice at a time.

The cut-off is rounded down to a whole hour so that a rollup hour (and so
each of its minutes) is either kept whole or deleted whole, together with the
events it sums: summaries stay equal to the sum of the raw events that are
still there. Minute rollups have a shorter retention of their own
(``[store] minute_retention_days``, :func:`prune_minutes`): at low traffic
they take about as much disk as the events. Older ranges are then read from
the hour rollups and raw events (the store's ``minute_floor_ns``). Events go in slices
of :data:`SLICE_ROWS`, one short transaction each, so a large first prune
never stalls the writer for long.
"""

from __future__ import annotations

import asyncio

import aiosqlite

from lumen_sniff.store.rollup import ROLLUP_DIMS, TABLES
from lumen_sniff.store.rows import HOUR_NS, MINUTE_NS

__all__ = ["SLICE_ROWS", "cutoff_ns", "prune", "prune_minutes"]

SLICE_ROWS = 20_000
"""Events deleted per transaction."""

_DAY_NS = 24 * HOUR_NS

# Naming every dimension lets SQLite seek each one's old rows through the
# (dim, bucket_ns, value) key instead of scanning the whole table.
_DELETE_ROLLUPS = (
    "DELETE FROM {table} WHERE dim IN ("
    + ", ".join(f"'{d}'" for d in ROLLUP_DIMS)
    + ") AND bucket_ns < ?"
)


def cutoff_ns(now_ns: int, retention_days: int) -> int:
    """Oldest start time kept: ``now - days``, rounded down to the hour."""
    edge = now_ns - retention_days * _DAY_NS
    return edge - edge % HOUR_NS


async def prune(conn: aiosqlite.Connection, lock: asyncio.Lock, before_ns: int) -> int:
    """Delete events started before ``before_ns`` and rollup hours before it.

    Args:
        conn: The write connection (autocommit mode).
        lock: The write lock shared with the writer.
        before_ns: Hour-aligned cut-off (see :func:`cutoff_ns`).

    Returns:
        Events deleted.
    """
    if before_ns % HOUR_NS:
        raise ValueError("retention cut-off must be hour-aligned")
    deleted = 0
    while True:
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                cur = await conn.execute(
                    "DELETE FROM events WHERE seq IN "
                    "(SELECT seq FROM events WHERE started_ns < ? LIMIT ?)",
                    (before_ns, SLICE_ROWS),
                )
                count = cur.rowcount
                if count < SLICE_ROWS:
                    for table in TABLES.values():
                        await conn.execute(_DELETE_ROLLUPS.format(table=table), (before_ns,))
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        deleted += count
        if count < SLICE_ROWS:
            return deleted
        await asyncio.sleep(0)


async def prune_minutes(conn: aiosqlite.Connection, lock: asyncio.Lock, before_ns: int) -> None:
    """Delete the minute rollups of minutes before ``before_ns`` (hour rollups stay).

    The caller first stops reading minute rollups below ``before_ns`` (the
    store's minute floor), so no query sums a minute half deleted.
    """
    async with lock:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(_DELETE_ROLLUPS.format(table=TABLES[MINUTE_NS]), (before_ns,))
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
