"""One sink's bounded queue, batching and retries, on its own thread.

Strategy: the runner is a store :class:`~lumen_sniff.store.CommitListener`,
so a sink only ever sends what is durably stored. ``committed`` runs on the
event loop and must never wait: it appends to a bounded deque under a lock
and, when the deque is full, counts the excess as ``queue_full`` drops. A
worker thread takes up to ``batch_max`` records (waiting at most
``batch_wait_s`` after the first for more), calls ``sink.send``, and on an
exception waits the next of ``retry_pauses_s`` and tries again; after the last
pause the batch is dropped (``export_failed``). So a slow or dead collector
costs memory up to the queue bound and nothing else: capture, the pipeline and
the store never wait on it.

Shutdown (``closed``, called when the writer closes): the worker sends what is
queued without further pauses, for at most ``close_timeout_s``; whatever is
still queued or in flight then is counted as ``shutdown``. Every record given
to ``committed`` ends up in exactly one of ``sent`` or ``dropped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from lumen_sniff.model import UsageEvent
from lumen_sniff.sinks.base import Sink, SinkRejected
from lumen_sniff.sinks.settings import QueueSettings

__all__ = ["SinkRunner"]

log = logging.getLogger("lumen_sniff.sinks")


class SinkRunner:
    """Feeds one :class:`~lumen_sniff.sinks.base.Sink` from committed batches."""

    def __init__(self, sink: Sink, settings: QueueSettings) -> None:
        self.sink = sink
        self.settings = settings
        self._cond = threading.Condition()
        self._queue: deque[UsageEvent] = deque()
        self._inflight = 0
        self._closing = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.sent = 0
        """Records delivered."""
        self.batches = 0
        """Successful sends."""
        self.failures = 0
        """Failed send attempts (each retry counts)."""
        self.dropped: dict[str, int] = {}
        """Records not delivered, by reason."""
        self.last_error: str | None = None
        """The last send failure, for /api/status."""
        self._healthy = True

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.sink.name

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    # ------------------------------------------------------- commit listener

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """Queue a committed batch without waiting; count what does not fit."""
        with self._cond:
            if self._closing:
                self._drop("shutdown", len(events))
                return
            room = self.settings.queue_size - len(self._queue)
            if room < len(events):
                self._drop("queue_full", len(events) - max(room, 0))
                events = events[: max(room, 0)]
            self._queue.extend(events)
            self._cond.notify()

    def closed(self) -> None:
        """Flush for at most ``close_timeout_s``, count the rest, close the sink."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(self.settings.close_timeout_s)
        with self._cond:
            if self._thread.is_alive():
                self._abandoned = True
                self._drop("shutdown", len(self._queue) + self._inflight)
                self._queue.clear()
                self._inflight = 0
                return
        self._close_sink()

    def stats(self) -> dict[str, object]:
        """Counters for /api/status and /metrics."""
        own = getattr(self.sink, "stats", None)
        extra = dict(own()) if callable(own) else {}
        with self._cond:
            return {
                **extra,
                "queue": len(self._queue),
                "queue_capacity": self.settings.queue_size,
                "sent": self.sent,
                "batches": self.batches,
                "failures": self.failures,
                "dropped": dict(self.dropped),
                "last_error": self.last_error,
            }

    # ---------------------------------------------------------------- worker

    def _drop(self, reason: str, count: int) -> None:
        if count > 0:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            outcome = self._deliver(batch)
            with self._cond:
                if self._abandoned:
                    return  # closed() already counted this batch as shutdown
                self._inflight = 0
                if outcome is None:
                    self.sent += len(batch)
                    self.batches += 1
                else:
                    self._drop(outcome, len(batch))

    def _next_batch(self) -> list[UsageEvent] | None:
        s = self.settings
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + s.batch_wait_s
            while len(self._queue) < s.batch_max and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(s.batch_max, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._inflight = n
            return batch

    def _deliver(self, batch: list[UsageEvent]) -> str | None:
        """Send with retries; None when delivered, else the drop reason."""
        pauses = self.settings.retry_pauses_s
        last_try = False
        for attempt in range(len(pauses) + 1):
            try:
                self.sink.send(batch)
                if not self._healthy:
                    self._healthy = True
                    log.info("sink %s: delivering again", self.sink.name)
                return None
            except SinkRejected as exc:
                self._failed(exc)
                return "rejected"
            except Exception as exc:  # a sink is third-party client code: any failure
                self._failed(exc)
            with self._cond:
                if attempt >= len(pauses) or last_try:
                    return "export_failed"
                # Waiting on the condition lets closed() cut a backoff short;
                # then one last attempt, without pausing, before giving up.
                self._cond.wait_for(lambda: self._closing, pauses[attempt])
                last_try = self._closing
        return "export_failed"  # pragma: no cover - the loop always returns

    def _failed(self, exc: BaseException) -> None:
        with self._cond:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self._healthy:  # once per outage, not once per attempt
            self._healthy = False
            log.warning("sink %s: send failed (retrying): %s", self.sink.name, self.last_error)

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception:
            log.exception("sink %s: close failed", self.sink.name)
