"""Opening the database, and the :class:`Store` that the daemon and the API use.

Two connections: the writer's (WAL, ``synchronous=NORMAL``: a process crash,
``kill -9`` included, never loses a committed transaction; only an OS crash
or power cut can lose the last few) and a read-only one for the API, so a slow
query never holds up inserts. The file is created 0600 in a 0700 directory
because usage, process names and key fingerprints are still private.

Usage::

    store = await open_store(path, retention_days=90)
    store.writer.submit(event)              # from the event loop, never blocks
    totals = await store.summary(since_ns=..., until_ns=...)
    await store.close()                     # commits everything queued
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiosqlite

from lumen_sniff.errors import StoreError
from lumen_sniff.model import UsageEvent
from lumen_sniff.store import aggregates, queries, retention
from lumen_sniff.store.aggregates import Cell, Sums
from lumen_sniff.store.budgetdb import BudgetDb
from lumen_sniff.store.queries import MAX_NS, EventFilter, Series, Totals
from lumen_sniff.store.schema import MIGRATIONS, SCHEMA_VERSION
from lumen_sniff.store.writer import Writer

__all__ = ["Lap", "Store", "open_store"]

log = logging.getLogger("lumen_sniff.store")

_T = TypeVar("_T")

_SHARED_DIRS = frozenset(map(Path, ("/", "/tmp", "/var/tmp", "/var/lib", "/var", "/home", "/root")))
"""Directories whose mode is never changed, even when group/world accessible."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Lap:
    """A named time range and what happened in it."""

    name: str
    """Name given when the lap started."""
    started_ns: int
    """Start, UNIX ns."""
    ended_ns: int | None
    """End, UNIX ns; None while it runs."""
    totals: Totals
    """Sums over the lap's events."""


class Store:
    """The event database: writer, queries, laps and retention. Create with :func:`open_store`."""

    def __init__(
        self,
        path: Path,
        wconn: aiosqlite.Connection,
        rconn: aiosqlite.Connection,
        writer: Writer,
        lock: asyncio.Lock,
        *,
        retention_days: int,
        event_count: int,
        minute_retention_days: int = 0,
    ) -> None:
        self.path = path
        """Database file."""
        self.writer = writer
        """Submit events here."""
        self.retention_days = retention_days
        """Days kept; 0 keeps everything."""
        self.minute_retention_days = minute_retention_days
        """Days of minute rollups kept; 0 keeps them as long as the events."""
        self.minute_floor_ns = (
            retention.cutoff_ns(time.time_ns(), minute_retention_days)
            if minute_retention_days > 0
            else 0
        )
        """Minute rollups are read from here on only (older minutes: hours and raw events)."""
        self.budgets = BudgetDb(wconn, rconn, lock)
        """Budget state and the alert outbox."""
        self._wconn = wconn
        self._rconn = rconn
        self._lock = lock
        self._base_count = event_count
        self._pruned = 0
        self._retention_task: asyncio.Task[None] | None = None
        self._closed = False

    # -------------------------------------------------------------- queries

    async def summary(self, since_ns: int = 0, until_ns: int = MAX_NS) -> Totals:
        """Sums over the events started in ``[since_ns, until_ns)``."""
        return await self._read(queries.summarize(self._rconn, since_ns, until_ns))

    async def usage(
        self, group_by: str, bucket: str, since_ns: int = 0, until_ns: int = MAX_NS
    ) -> list[Series]:
        """Per-group, per-bucket sums; see :func:`queries.usage_series`."""
        return await self._read(
            queries.usage_series(self._rconn, group_by, bucket, since_ns, until_ns)
        )

    async def aggregate(
        self, f: EventFilter, group_by: str | None, width_ns: int | None
    ) -> dict[Cell, Totals]:
        """Sums of the events matching ``f`` per (bucket, group); see :func:`aggregates.grouped`."""
        return await self._read(
            aggregates.grouped(self._rconn, f, group_by, width_ns, self.minute_floor_ns)
        )

    async def aggregate_sums(
        self, f: EventFilter, group_by: str | None, width_ns: int | None
    ) -> dict[Cell, Sums]:
        """:meth:`aggregate` as ROLLUP_SUMS-ordered tuples (no object per cell)."""
        return await self._read(
            aggregates.grouped_sums(self._rconn, f, group_by, width_ns, self.minute_floor_ns)
        )

    async def events(self, f: EventFilter | None = None, limit: int = 100) -> list[UsageEvent]:
        """The newest ``limit`` events matching ``f``, newest first."""
        return await self._read(queries.list_events(self._rconn, f or EventFilter(), limit))

    async def export(self, f: EventFilter | None = None) -> AsyncIterator[UsageEvent]:
        """Every event matching ``f``, oldest first."""
        try:
            async for event in queries.export_events(self._rconn, f or EventFilter()):
                yield event
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    async def oldest_ns(self) -> int | None:
        """Start of the oldest stored event, or None when there is none."""

        async def query() -> int | None:
            async with self._rconn.execute("SELECT MIN(started_ns) FROM events") as cur:
                row = await cur.fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._read(query())

    async def _read(self, coro: Awaitable[_T]) -> _T:
        # sqlite errors (corruption, disk) become StoreError at this edge.
        try:
            return await coro
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    # ----------------------------------------------------------------- laps

    async def start_lap(self, name: str, at_ns: int | None = None) -> Lap:
        """End the running lap (if any) and start one named ``name`` at ``at_ns`` (now)."""
        now = time.time_ns() if at_ns is None else at_ns
        async with self._lock:
            await self._wconn.execute("BEGIN IMMEDIATE")
            try:
                await self._wconn.execute(
                    "UPDATE laps SET ended_ns = ? WHERE ended_ns IS NULL", (now,)
                )
                await self._wconn.execute(
                    "INSERT INTO laps (name, started_ns) VALUES (?, ?)", (name, now)
                )
                await self._wconn.execute("COMMIT")
            except BaseException:
                await self._wconn.execute("ROLLBACK")
                raise
        return Lap(name=name, started_ns=now, ended_ns=None, totals=Totals())

    async def end_lap(self, at_ns: int | None = None) -> bool:
        """End the running lap at ``at_ns`` (now); False when no lap was running."""
        now = time.time_ns() if at_ns is None else at_ns
        async with self._lock:
            cur = await self._wconn.execute(
                "UPDATE laps SET ended_ns = ? WHERE ended_ns IS NULL", (now,)
            )
            await self._wconn.commit()
        return cur.rowcount > 0

    async def laps(self) -> list[Lap]:
        """Every lap, oldest first, with its sums."""
        async with self._rconn.execute(
            "SELECT name, started_ns, ended_ns FROM laps ORDER BY id"
        ) as cur:
            rows = list(await cur.fetchall())
        out = []
        for name, started, ended in rows:
            totals = await self.summary(started, MAX_NS if ended is None else ended)
            out.append(Lap(name=name, started_ns=started, ended_ns=ended, totals=totals))
        return out

    # ------------------------------------------------------------ retention

    async def prune(self, now_ns: int | None = None) -> int:
        """Delete what is older than the retention; return the events deleted."""
        now = time.time_ns() if now_ns is None else now_ns
        if self.minute_retention_days > 0:
            cut = retention.cutoff_ns(now, self.minute_retention_days)
            # Raised before the delete: no query reads a minute being deleted.
            self.minute_floor_ns = max(self.minute_floor_ns, cut)
            await retention.prune_minutes(self._wconn, self._lock, self.minute_floor_ns)
        if self.retention_days <= 0:
            return 0
        deleted = await retention.prune(
            self._wconn, self._lock, retention.cutoff_ns(now, self.retention_days)
        )
        self._pruned += deleted
        if deleted:
            log.info("retention: deleted %d events (> %d days old)", deleted, self.retention_days)
        return deleted

    def start_retention(self, interval_s: float = 3600.0) -> None:
        """Prune now and then every ``interval_s`` in the background."""
        if (self.retention_days > 0 or self.minute_retention_days > 0) and (
            self._retention_task is None
        ):
            self._retention_task = asyncio.create_task(
                self._retention_loop(interval_s), name="store-retention"
            )

    async def _retention_loop(self, interval_s: float) -> None:
        while True:
            try:
                await self.prune()
            except (sqlite3.Error, ValueError) as exc:
                log.error("retention failed (will retry): %s", exc)
            await asyncio.sleep(interval_s)

    # ---------------------------------------------------------------- state

    @property
    def event_count(self) -> int:
        """Events in the database (kept as a counter: no COUNT(*) per request)."""
        return self._base_count + self.writer.committed_events - self._pruned

    def stats(self) -> dict[str, object]:
        """The store half of /api/status."""
        try:
            size = sum(
                os.stat(f"{self.path}{suffix}").st_size
                for suffix in ("", "-wal")
                if os.path.exists(f"{self.path}{suffix}")
            )
        except OSError:
            size = 0
        return {
            "path": str(self.path),
            "events": self.event_count,
            "size_bytes": size,
            "schema_version": SCHEMA_VERSION,
            "retention_days": self.retention_days,
            "minute_retention_days": self.minute_retention_days,
            **self.writer.stats(),
        }

    async def close(self) -> None:
        """Commit everything queued, stop background work and close the database."""
        if self._closed:
            return
        self._closed = True
        await self.writer.close()
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
        await self._rconn.close()
        with contextlib.suppress(sqlite3.Error):
            await self._wconn.execute("PRAGMA optimize")
        await self._wconn.close()


_WRITER_CACHE_KIB = 16384
"""The writer's page cache. Inserts touch the right edge of each index B-tree,
which 16 MiB holds long after the database outgrows SQLite's 2 MiB default; the
cache is the daemon's heap, so it is what RSS grows to as the database grows."""
_READER_CACHE_KIB = 8192
"""The read-only connection's page cache: queries scan ranges once, and the
kernel's page cache (outside the daemon's RSS) already holds what they reread.
No ``mmap``: mapped database pages would count in the daemon's RSS."""


async def _connect(path: Path) -> tuple[aiosqlite.Connection, aiosqlite.Connection, int]:
    """Open the writing and the read-only connection, migrating first; count events."""
    wconn: aiosqlite.Connection | None = None
    rconn: aiosqlite.Connection | None = None
    try:
        _secure_files(path)
        wconn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=10000",
            f"cache_size=-{_WRITER_CACHE_KIB}",
            "mmap_size=0",
        ):
            await wconn.execute(f"PRAGMA {pragma}")
        await _migrate(wconn, path)
        _secure_files(path)
        rconn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in (
            "query_only=ON",
            "busy_timeout=10000",
            f"cache_size=-{_READER_CACHE_KIB}",
            "mmap_size=0",
        ):
            await rconn.execute(f"PRAGMA {pragma}")
        async with rconn.execute("SELECT COUNT(*) FROM events") as cur:
            row = await cur.fetchone()
    except BaseException as exc:
        # Close on every failure, StoreError from _migrate included: an
        # aiosqlite connection left open keeps a non-daemon thread alive, and
        # the process could never exit.
        for conn in (rconn, wconn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.close()
        if isinstance(exc, sqlite3.Error | OSError):
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        raise
    return wconn, rconn, int(row[0]) if row else 0


async def open_store(
    path: Path | str,
    *,
    retention_days: int = 90,
    minute_retention_days: int = 0,
    queue_size: int = 100_000,
    batch_max: int = 1000,
    batch_wait_s: float = 0.05,
    retention_interval_s: float = 3600.0,
) -> Store:
    """Open (creating or upgrading) the database and start its writer and retention.

    Args:
        path: Database file; its directory is created 0700 if missing.
        retention_days: Days of events kept; 0 keeps everything.
        minute_retention_days: Days of minute rollups kept; 0 keeps them with the
            events (the daemon's default is 14, ``[store] minute_retention_days``).
        queue_size: Events that may wait for the writer before drops start.
        batch_max: Most events per transaction.
        batch_wait_s: Longest wait for a batch to fill.
        retention_interval_s: Time between retention passes.

    Returns:
        The open store. Close it with :meth:`Store.close`.

    Raises:
        StoreError: The file cannot be created or opened, is not a lumen-sniff
            database, or comes from a newer version.
    """
    path = Path(path)
    wconn, rconn, count = await _connect(path)
    lock = asyncio.Lock()
    writer = Writer(
        wconn, lock, queue_size=queue_size, batch_max=batch_max, batch_wait_s=batch_wait_s
    )
    writer.start()
    store = Store(
        path,
        wconn,
        rconn,
        writer,
        lock,
        retention_days=retention_days,
        event_count=count,
        minute_retention_days=minute_retention_days,
    )
    store.start_retention(retention_interval_s)
    return store


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    async with conn.execute("SELECT version FROM schema_version") as cur:
        row = await cur.fetchone()
    if row is None:
        await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = 0
    else:
        version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: database schema version {version} is newer than this lumen-sniff "
            f"({SCHEMA_VERSION}); upgrade lumen-sniff or use another database file"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # One script per migration, in its own transaction: a crash mid-upgrade
        # rolls back to the previous version.
        script = MIGRATIONS[target - 1]
        await conn.executescript(
            f"BEGIN IMMEDIATE;\n{script}\nUPDATE schema_version SET version = {target};\nCOMMIT;"
        )
        log.info("%s: schema upgraded to version %d", path, target)


def _secure_files(path: Path) -> None:
    """Create the directory 0700 and the file 0600, and tighten them if they exist."""
    parent = path.parent.resolve()
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True)
        os.chmod(parent, 0o700)
    else:
        mode = parent.stat().st_mode
        if mode & 0o077 and not mode & stat.S_ISVTX and parent not in _SHARED_DIRS:
            log.warning("%s: tightening directory mode to 0700", parent)
            os.chmod(parent, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(f"{path}{suffix}")
        if candidate.exists() and candidate.stat().st_mode & 0o077:
            os.chmod(candidate, 0o600)
