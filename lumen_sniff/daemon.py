"""The daemon: the only place that wires threads, queues and the event loop.

Threads and data flow::

    capture thread(s)            asyncio loop (this module)
    ┌───────────────┐  Chunk   ┌──────────────────────────────────────────────┐
    │ bcc ring buf  │─queue──▶ │ _pump: Pipeline.feed ─▶ UsageEvent ─▶ writer │──▶ SQLite
    │ scapy sniffer │─queue──▶ │        IgnoreConnection ─▶ capture.ignore    │
    └───────────────┘          │ uvicorn (FastAPI) reads the store            │
                               └──────────────────────────────────────────────┘

Each capture backend owns a bounded ``queue.Queue`` and counts what it cannot
enqueue. The daemon gives each a :class:`~lumen_sniff.doorbell.BellQueue`, so the
pump sleeps until a Chunk comes (an idle daemon does not run); it drains the
queues in batches and yields to the loop between them, so the API stays
responsive under load.

Shutdown (SIGTERM/SIGINT): stop capture, drain what is queued through the
pipeline, close the pipeline (open exchanges end as incomplete events), flush
the writer, close the store, stop the API. Nothing already captured is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import queue
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from lumen_sniff import __version__
from lumen_sniff.api.auth import check_listen
from lumen_sniff.api.server import quiet_server
from lumen_sniff.config import Settings
from lumen_sniff.doorbell import BellQueue, Doorbell
from lumen_sniff.errors import CaptureError, ConfigError
from lumen_sniff.model import Chunk, IgnoreConnection, UsageEvent

__all__ = ["Capture", "Daemon", "key_salt"]

log = logging.getLogger("lumen_sniff.daemon")

_BATCH = 2048
"""Chunks handled before the pump yields to the loop."""


class Capture(Protocol):
    """What the daemon needs of a capture backend."""

    chunks: queue.Queue[Chunk]

    def start(self) -> None:
        """Attach and start producing Chunks."""

    def stop(self) -> None:
        """Stop producing; queued Chunks stay in ``chunks``."""

    def status(self) -> dict[str, Any]:
        """Counters and attachment state for /api/status."""


def key_salt(state_dir: Path) -> bytes:
    """Load the API-key fingerprint salt, creating it (0600) on first use.

    A stable salt keeps fingerprints comparable across restarts; a per-host
    random one keeps them useless to anyone holding a copy of the database alone.
    """
    path = state_dir / "key-salt"
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return data


class Daemon:
    """Capture → pipeline → store, plus the API, in one process."""

    def __init__(self, settings: Settings) -> None:
        check_listen(settings.listen_host, settings.token)
        self.settings = settings
        self._captures: list[Capture] = []
        self._capture_errors: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._ready = False
        self._started_s = time.time()
        self._pump_stats = {"chunks": 0, "events": 0, "ignored_connections": 0}
        self._pipeline: Any = None
        self._store: Any = None
        self._writer: Any = None
        self._server: Any = None
        self._bell: Doorbell | None = None
        self._capture_start: asyncio.Future[None] | None = None
        self._budgets: Any = None
        self._budget_batch: list[UsageEvent] = []
        self._sinks: list[Any] = []
        self._sink_errors: dict[str, str] = {}

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Open the store, start capture and the API. Raises on fatal errors."""
        for warning in self.settings.warnings:
            log.warning("config: %s", warning)
        # Capture starts first, in a thread of its own: attaching is mostly
        # waiting (compiling, reading files, the kernel), so the store, the
        # pipeline and the API's imports proceed meanwhile. The API listens
        # only once capture is up (or has failed), as before.
        self._bell = Doorbell(asyncio.get_running_loop())
        self._capture_start = _in_thread(self._start_captures, "lumen-start-capture")
        from lumen_sniff.pipeline import Pipeline
        from lumen_sniff.stagesettings import pipeline_settings
        from lumen_sniff.store import open_store

        state_dir = self.settings.db_path.parent
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        self._store = await open_store(
            self.settings.db_path,
            retention_days=self.settings.retention_days,
            minute_retention_days=self.settings.minute_retention_days,
        )
        self._writer = self._store.writer
        await self._start_budgets()
        self._start_sinks()
        self._pipeline = Pipeline(pipeline_settings(self.settings, key_salt=key_salt(state_dir)))
        app = self._make_app()
        await self._capture_start
        _release_free_heap()
        await self._start_api(app)
        self._ready = bool(self._captures)
        log.info(
            "lumen-sniff %s: capture %s, db %s, API http://%s:%d",
            __version__,
            ", ".join(type(c).__name__ for c in self._captures) or "none",
            self.settings.db_path,
            self.settings.listen_host,
            self.settings.listen_port,
        )

    async def _start_budgets(self) -> None:
        from lumen_sniff.budgets.baseline import trailing_baseline
        from lumen_sniff.budgets.service import BudgetService
        from lumen_sniff.store import EventFilter

        store = self._store
        cache_dir = self.settings.capture.bpf_cache_dir
        self._budgets = BudgetService(
            self.settings.budgets,
            store.budgets,
            lambda since: store.export(EventFilter(since_ns=since)),
            baseline=lambda budget, now: trailing_baseline(store, budget, now),
            bpf_cache_dir=Path(cache_dir) if cache_dir else None,
        )
        self._budgets.enforcer.busy = self._open_by_pid
        await self._budgets.start()

    def _start_sinks(self) -> None:
        """Export sinks listen to the writer: they see only committed events."""
        from lumen_sniff.sinks import build_sinks

        self._sinks, self._sink_errors = build_sinks(self.settings)
        for runner in self._sinks:
            runner.start()
            self._writer.add_listener(runner)

    def _start_captures(self) -> None:
        mode = self.settings.capture.mode
        if mode in ("auto", "bpf"):
            self._try_start("bpf", self._make_bpf, required=mode == "bpf")
        if mode in ("auto", "pcap"):
            self._try_start("pcap", self._make_sniffer, required=mode == "pcap")
        if not self._captures:
            raise CaptureError(
                "no capture backend could start: "
                + "; ".join(f"{k}: {v}" for k, v in self._capture_errors.items())
            )

    def _try_start(self, name: str, factory: Any, *, required: bool) -> None:
        assert self._bell is not None  # start() made it, in the loop's thread
        try:
            capture = factory()
            capture.chunks = BellQueue(capture.chunks.maxsize, self._bell)
            capture.start()
        except (CaptureError, OSError, ImportError) as exc:
            if required:
                raise CaptureError(f"{name} capture: {exc}") from exc
            self._capture_errors[name] = str(exc)
            log.warning("%s capture unavailable, continuing without it: %s", name, exc)
            return
        self._captures.append(capture)

    def _make_bpf(self) -> Capture:
        from lumen_sniff.capture.bpf.loader import BpfCapture
        from lumen_sniff.stagesettings import bpf_settings

        capture: Capture = BpfCapture(bpf_settings(self.settings, exclude_pids=(os.getpid(),)))
        return capture

    def _make_sniffer(self) -> Capture:
        from lumen_sniff.capture.pcap.sniffer import Sniffer
        from lumen_sniff.stagesettings import sniffer_settings

        sniffer: Capture = Sniffer.from_settings(sniffer_settings(self.settings))
        return sniffer

    def _make_app(self) -> Any:
        from lumen_sniff.api import create_app
        from lumen_sniff.pricing.overrides import overrides_from
        from lumen_sniff.pricing.prices import Pricer

        return create_app(
            self._store,
            status=self.status,
            token=self.settings.token,
            pricer=Pricer(overrides_from(self.settings.prices)),
            budgets=self._budgets,
        )

    async def _start_api(self, app: Any) -> None:
        self._server = quiet_server(app, self.settings.listen_host, self.settings.listen_port)
        self._api_task = asyncio.create_task(self._server.serve(), name="api")
        while not self._server.started:
            if self._api_task.done():
                self._api_task.result()
                raise ConfigError(
                    f"the API cannot listen on {self.settings.listen_host}:"
                    f"{self.settings.listen_port} (in use, or not an address of this "
                    "host): choose another with --listen or [api] listen"
                )
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------- run

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT, then shut down without losing events."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
        except BaseException:
            await self._abort_start()
            raise
        pump = asyncio.create_task(self._pump(), name="pipeline")
        await self._stopping.wait()
        log.info("stopping: flushing pending events")
        for capture in self._captures:
            capture.stop()
        if self._bell is not None:
            self._bell.ring()
        await pump
        self._emit(self._pipeline.close())
        self._feed_budgets()
        await self._store.writer.flush()
        await self._budgets.stop()  # fail-open: blocks and pauses end with the daemon
        await self._store.close()
        self._server.exit()
        await self._api_task
        log.info("stopped; %d events stored this run", self._pump_stats["events"])

    async def _abort_start(self) -> None:
        """Undo a half-done start (e.g. the API port is taken).

        The store's connection threads are not daemon threads: left open, they
        would keep the process alive after the error was reported.
        """
        if self._capture_start is not None:
            with contextlib.suppress(BaseException):
                await self._capture_start  # a capture half-attached is stopped below
        for capture in self._captures:
            with contextlib.suppress(Exception):
                capture.stop()
        if self._budgets is not None:
            with contextlib.suppress(Exception):
                await self._budgets.stop()
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.close()

    async def _pump(self) -> None:
        """Move Chunks from the capture queues through the pipeline to the writer."""
        assert self._bell is not None  # start() made it with the first capture
        while True:
            moved = 0
            feed, emit = self._pipeline.feed, self._emit
            for capture in self._captures:
                for chunk in _drain(capture.chunks, _BATCH):
                    moved += 1
                    emit(feed(chunk))
            self._pump_stats["chunks"] += moved
            self._feed_budgets()
            if moved == 0:
                if self._stopping.is_set():
                    return
                await self._bell.wait()
            else:
                await asyncio.sleep(0)

    def _open_by_pid(self) -> dict[int, int]:
        # Budgets leave a blocked process's connections open while it has a call in flight.
        return dict(self._pipeline.open_by_pid()) if self._pipeline is not None else {}

    def _feed_budgets(self) -> None:
        # Budgets see events as they leave the pipeline, not after the store's
        # batched commit: a block lands up to one batch window sooner.
        if self._budget_batch:
            self._budgets.observe(self._budget_batch)
            self._budget_batch = []

    def _emit(self, outputs: list[Any]) -> None:
        for out in outputs:
            if isinstance(out, UsageEvent):
                self._pump_stats["events"] += 1
                self._writer.submit(out)
                self._budget_batch.append(out)
            elif isinstance(out, IgnoreConnection):
                self._pump_stats["ignored_connections"] += 1
                for capture in self._captures:
                    ignore = getattr(capture, "ignore", None)
                    if ignore is not None and out.conn.source == getattr(capture, "source", "bpf"):
                        ignore(out.conn)

    # ---------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """The capture half of /api/status (the store adds its own part)."""
        backends = {type(c).__name__: c.status() for c in self._captures}
        dropped: dict[str, int] = {}
        unseen: list[Any] = []
        for backend in backends.values():
            for reason, count in backend.get("dropped", {}).items():
                dropped[reason] = dropped.get(reason, 0) + count
            unseen.extend((backend.get("blind_spots") or {}).get("unseen", []))
        return {
            "ready": self._ready,
            "version": __version__,
            "mode": self.settings.capture.mode,
            "uptime_s": round(time.time() - self._started_s, 1),
            "backends": backends,
            "unavailable": dict(self._capture_errors),
            "pipeline": dict(self._pipeline.stats) if self._pipeline else {},
            "pump": dict(self._pump_stats),
            "dropped": dropped,
            "unseen": unseen,
            "export": {runner.name: runner.stats() for runner in self._sinks},
            "export_unavailable": dict(self._sink_errors),
        }


def _release_free_heap() -> None:
    """Hand the heap that start-up used and freed back to the kernel.

    Compiling the BPF programs, judging files and importing leave whole free
    pages inside glibc's arenas (one per thread that allocated); glibc keeps them
    mapped, so they stay in RSS for the daemon's life. ``malloc_trim`` returns them.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def _in_thread(fn: Callable[[], None], name: str) -> asyncio.Future[None]:
    """Run ``fn`` in a new thread; the future (of the running loop) gets its outcome."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if not done.done():
            done.set_result(None) if exc is None else done.set_exception(exc)

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the awaiting task, not lost in the thread
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def _drain(chunks: queue.Queue[Chunk], limit: int) -> Iterator[Chunk]:
    if isinstance(chunks, BellQueue):  # one lock for the batch (start() makes them)
        yield from chunks.drain(limit)
        return
    for _ in range(limit):
        try:
            yield chunks.get_nowait()
        except queue.Empty:
            return
