"""The batched event writer: a bounded queue and one group-committing task.

Strategy: ``submit`` never blocks the pipeline. It puts the event on a
bounded asyncio queue, or counts a drop (``store_queue_full``) when the queue
is full, so overload is visible in /api/status and /metrics instead of growing
memory or stalling capture. One task takes what is queued, up to
``batch_max`` events, waiting at most ``batch_wait_s`` after the first one for
more, and commits them in one transaction together with their hour and minute
rollups (summed in memory from the batch's rows, see :mod:`.rollup`):
a crash either keeps a whole batch (events and rollups) or none of it. Only
after the commit are listeners (live feed, metrics) told, so nothing is ever
shown that a restart would lose.

Duplicates: event ids are deterministic, so a replayed capture or a restart
that re-submits gives ids already stored. The insert skips them (``ON
CONFLICT (id) DO NOTHING``) and only what was really inserted reaches the
rollups, the listeners and the counters; the rest is counted as
``duplicates``. The common case costs one extra cheap query (the highest
``seq`` before the insert): only when the insert's row count falls short are
the inserted rows read back (rowids after that ``seq``) to tell them apart.

Not thread-safe: call ``submit`` from the event loop the writer runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol

import aiosqlite

from lumen_sniff.model import UsageEvent
from lumen_sniff.store.rollup import UPSERT_SQL, batch_deltas
from lumen_sniff.store.rows import INSERT_EVENT_SQL, event_to_row

__all__ = ["CommitListener", "Writer"]

log = logging.getLogger("lumen_sniff.store")


class CommitListener(Protocol):
    """Told about every committed batch (live feed, metrics). Must be quick."""

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """``events`` are now durably stored, in submission order."""

    def closed(self) -> None:
        """The writer is closed: no more batches will come."""


class Writer:
    """Group-commits submitted events to the ``events`` and ``rollups`` tables."""

    retry_pauses_s: tuple[float | None, ...] = (0.1, 0.5, None)
    """Pause before each retry of a failed transaction; None: give up (count drops)."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        lock: asyncio.Lock,
        *,
        queue_size: int = 100_000,
        batch_max: int = 1000,
        batch_wait_s: float = 0.05,
    ) -> None:
        """Create the writer; call :meth:`start` on the running loop.

        Args:
            conn: The store's write connection (autocommit mode).
            lock: Held for each transaction on ``conn`` (retention and laps share it).
            queue_size: Events that may wait; more are dropped and counted.
            batch_max: Most events per transaction.
            batch_wait_s: Longest wait for a batch to fill after its first event.
        """
        self._conn = conn
        self._lock = lock
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue(queue_size)
        self._queue_size = queue_size
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._listeners: list[CommitListener] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._submitted = 0
        self._done = 0
        self._progress = asyncio.Event()
        self.committed_events = 0
        """Events committed since start."""
        self.batches = 0
        """Transactions committed since start."""
        self.last_commit_ms = 0.0
        """Duration of the last transaction."""
        self.drops: dict[str, int] = {}
        """Events not stored, by reason."""
        self.duplicates = 0
        """Events skipped because their id was already stored (or repeated in the batch)."""

    def start(self) -> None:
        """Start the committing task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-writer")

    def add_listener(self, listener: CommitListener) -> None:
        """Tell ``listener`` about every batch committed from now on."""
        self._listeners.append(listener)

    def submit(self, event: UsageEvent) -> bool:
        """Queue an event for storage without blocking.

        Returns:
            True when queued; False when dropped (queue full or writer closed),
            in which case the drop is counted by reason.
        """
        if self._closed:
            self._drop("store_closed", 1)
            return False
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop("store_queue_full", 1)
            return False
        self._submitted += 1
        return True

    async def flush(self) -> None:
        """Wait until every event submitted before this call is committed (or dropped)."""
        target = self._submitted
        while self._done < target:
            if self._task is None or self._task.done():
                raise RuntimeError("store writer is not running")
            self._progress.clear()
            await self._progress.wait()

    async def close(self) -> None:
        """Refuse new events, commit everything queued, stop the task, tell listeners."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for listener in self._listeners:
            listener.closed()

    def stats(self) -> dict[str, object]:
        """Counters for /api/status."""
        return {
            "queue": self._queue.qsize(),
            "queue_capacity": self._queue_size,
            "committed": self.committed_events,
            "batches": self.batches,
            "last_commit_ms": round(self.last_commit_ms, 3),
            "drops": dict(self.drops),
            "duplicates": self.duplicates,
        }

    # ------------------------------------------------------------------ task

    def _drop(self, reason: str, count: int) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + count

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            stored = await self._commit_with_retry(batch)
            if stored:
                for listener in self._listeners:
                    try:
                        listener.committed(stored)
                    except Exception:
                        log.exception("commit listener %r failed", listener)
            self._done += len(batch)
            self._progress.set()

    async def _commit_with_retry(self, batch: list[UsageEvent]) -> list[UsageEvent]:
        """Commit ``batch``; return the events inserted (none when given up)."""
        # A locked or momentarily full database is retried a few times; after
        # that the batch is counted, logged and skipped so the pipeline keeps
        # running (events queue up meanwhile and overflow as counted drops).
        for attempt, pause_s in enumerate(self.retry_pauses_s):
            try:
                return await self._commit(batch)
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                # OverflowError: a value beyond SQLite's 64-bit integers (a
                # corrupt count); it must cost the batch, not the writer task.
                if pause_s is None or not isinstance(exc, sqlite3.OperationalError):
                    log.error("could not store %d events: %s", len(batch), exc)
                    self._drop("store_write_error", len(batch))
                    return []
                log.warning("store write failed (attempt %d, retrying): %s", attempt + 1, exc)
                await asyncio.sleep(pause_s)
        return []  # pragma: no cover - the loop always returns

    async def _next_batch(self) -> list[UsageEvent]:
        queue = self._queue
        batch = [await queue.get()]
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_max:
            while len(batch) < self._batch_max and not queue.empty():
                batch.append(queue.get_nowait())
            remaining = deadline - time.monotonic()
            if len(batch) >= self._batch_max or remaining <= 0 or self._closed:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _commit(self, batch: list[UsageEvent]) -> list[UsageEvent]:
        """Insert ``batch`` and its rollups in one transaction; return what was inserted."""
        rows = [event_to_row(e) for e in batch]
        deltas = batch_deltas(rows)
        conn = self._conn
        async with self._lock:
            started = time.perf_counter()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                async with conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events") as cur:
                    last_seq = int((await cur.fetchone() or (0,))[0])
                cur = await conn.executemany(INSERT_EVENT_SQL, rows)
                inserted = cur.rowcount
                await cur.close()
                if inserted != len(rows):
                    keep = await self._inserted_indices(rows, last_seq)
                    batch = [batch[i] for i in keep]
                    deltas = batch_deltas([rows[i] for i in keep])
                for table, params in deltas.items():
                    await conn.executemany(UPSERT_SQL[table], params)
                await conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.execute("ROLLBACK")
                raise
            self.last_commit_ms = (time.perf_counter() - started) * 1000
        self.duplicates += len(rows) - len(batch)
        self.committed_events += len(batch)
        self.batches += 1
        return batch

    async def _inserted_indices(self, rows: list[tuple[Any, ...]], last_seq: int) -> list[int]:
        # New rows get rowids above the previous maximum, so the ids stored
        # after ``last_seq`` are this batch's inserts. An id repeated within
        # the batch was inserted by its first occurrence only.
        async with self._conn.execute("SELECT id FROM events WHERE seq > ?", (last_seq,)) as cur:
            fresh = {r[0] for r in await cur.fetchall()}
        keep = []
        for i, row in enumerate(rows):
            if row[0] in fresh:
                fresh.discard(row[0])
                keep.append(i)
        return keep
