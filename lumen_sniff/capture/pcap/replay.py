"""Replay a capture file through the pipeline: the offline twin of live capture.

Data flow, in the calling process or in each forked worker::

    CaptureFile ─frame─▶ scan_capture ─key, seq, flags, payload─▶ TcpReassembler ─Chunk─┐
    TlsDecryptor (tshark + key log, calling process) ─────────────────────── Chunk ─────┼─▶ pipeline
                                                                                        ┘
Plaintext flows come from our own reassembly, with consecutive in-order
segments of a direction coalesced into one Chunk (the pipeline's cost is per
Chunk; the events do not change, see capture/tcp/delivery.py), optionally split across
forked workers by flow. TLS flows, when a key log is given, come decrypted
from tshark (their raw, encrypted flows are judged "not HTTP" by the pipeline
and ignored). The pipeline is the same object the daemon uses, so a capture
replayed gives the events the daemon would have stored. Damage in the file
stops reading, but everything decoded before it is still flushed through the
pipeline and reported, and ``error`` says what broke.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from lumen_sniff.capture.pcap.keylog import TlsDecryptor, TlsSession
from lumen_sniff.capture.pcap.pcapfile import CaptureFile
from lumen_sniff.capture.pcap.scan import scan_capture
from lumen_sniff.capture.tcp.reassembler import ReassemblySettings, TcpReassembler
from lumen_sniff.errors import ReplayError
from lumen_sniff.model import Chunk, IgnoreConnection, PipelineOutput, UsageEvent

__all__ = ["REPLAY_COALESCE_WINDOW_NS", "ChunkPipeline", "ReplayReport", "replay_file"]

REPLAY_COALESCE_WINDOW_NS = 50_000_000
"""Capture time one coalesced replay Chunk may span (50 ms): bounds how far a
time can move for an event in the middle of a coalesced run (see capture/tcp/delivery.py)."""
_UNSHARED_STATS = ("flows", "closed_foreign")
"""Reassembly counters every worker counts for all flows, or only for others' flows."""


class ChunkPipeline(Protocol):
    """What replay needs of ``lumen_sniff.pipeline.Pipeline``."""

    def feed(self, chunk: Chunk) -> list[PipelineOutput]:
        """Take one Chunk; return finished events and ignore requests."""

    def close(self) -> list[PipelineOutput]:
        """End of input: finish open exchanges."""


@dataclass(kw_only=True, slots=True)
class ReplayReport:
    """What a replay read, made and could not use."""

    path: Path
    """The capture file."""
    format: str = ""
    """"pcap" or "pcapng" ("" when the file could not be opened)."""
    frames: int = 0
    """Frames read."""
    skipped_frames: Counter[str] = field(default_factory=Counter)
    """Frames carrying no usable TCP, by reason ("not_tcp", "fragment"…)."""
    chunks: int = 0
    """Chunks fed to the pipeline (plaintext and decrypted)."""
    events: int = 0
    """Usage events produced."""
    ignored_connections: int = 0
    """Connections the pipeline judged not to be LLM traffic."""
    tcp: Counter[str] = field(default_factory=Counter)
    """Reassembly counters: flows, gap_bytes, retransmit_bytes, closes by reason…"""
    tls_sessions: int = 0
    """TLS sessions seen (only with a key log)."""
    tls_missing_keys: list[TlsSession] = field(default_factory=list)
    """TLS sessions with application data that could not be decrypted."""
    error: str | None = None
    """Why reading stopped early (damaged file, tshark failure), else None."""
    elapsed_s: float = 0.0
    """Wall time the replay took."""


def replay_file(
    path: Path,
    make_pipeline: Callable[[], ChunkPipeline],
    on_event: Callable[[UsageEvent], None],
    *,
    keylog: Path | None = None,
    reassembly: ReassemblySettings | None = None,
    jobs: int = 1,
) -> ReplayReport:
    """Replay ``path`` through fresh pipelines; hand each event to ``on_event``.

    Events are delivered at the end, ordered by start time then id, so the
    output does not depend on ``jobs``.

    With ``jobs`` > 1 the file is read by that many forked workers, each
    owning the flows whose key hashes to it. A worker tracks every flow's
    lifetime, so flow numbers (and event ids) are the same as with one job,
    but reassembles and runs the pipeline only for its own: another worker's
    frame costs it a header parse and a dictionary lookup. Key-log decryption
    runs in the calling process.

    Args:
        path: a pcap or pcapng file (a pipe is spooled to a temporary file).
        make_pipeline: builds one pipeline (called once per job, plus once for TLS).
        on_event: receives each UsageEvent.
        keylog: an SSLKEYLOGFILE to decrypt TLS sessions with (needs tshark).
        reassembly: TCP limits (``source`` is forced to "replay"); by default
            in-order bytes are coalesced over ``REPLAY_COALESCE_WINDOW_NS``.
        jobs: worker processes for the plaintext pass.

    Returns:
        The report; ``report.error`` is set when the file was damaged.

    Raises:
        ReplayError: the file cannot be opened or is not a capture file.
        KeylogError: the key log cannot be read, or tshark is missing.
    """
    with _regular_file(path) as source:
        try:
            report = _replay(source, make_pipeline, on_event, keylog, reassembly, jobs)
        except ReplayError as exc:
            if source == path:
                raise
            raise ReplayError(str(exc).replace(str(source), str(path))) from exc
    if source != path:
        report.path = path
        report.error = report.error and report.error.replace(str(source), str(path))
    return report


@contextmanager
def _regular_file(path: Path) -> Iterator[Path]:
    """``path``, or a spooled copy when it is a pipe (``replay /dev/stdin``).

    Workers and tshark each read the file again, which a pipe cannot give.
    """
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True  # CaptureFile says why it cannot be read
    if regular:
        yield path
        return
    with (
        open(path, "rb") as source,
        tempfile.NamedTemporaryFile(prefix="lumen-replay-", suffix=".pcap") as copy,
    ):
        shutil.copyfileobj(source, copy, 1 << 20)
        copy.flush()
        yield Path(copy.name)


def _replay(
    path: Path,
    make_pipeline: Callable[[], ChunkPipeline],
    on_event: Callable[[UsageEvent], None],
    keylog: Path | None,
    reassembly: ReassemblySettings | None,
    jobs: int,
) -> ReplayReport:
    started = time.perf_counter()
    decryptor = TlsDecryptor(path, keylog) if keylog is not None else None
    CaptureFile(path).close()  # a file that cannot be opened fails here, in this process
    jobs = max(1, jobs)
    if reassembly is None:
        reassembly = ReassemblySettings(coalesce_window_ns=REPLAY_COALESCE_WINDOW_NS)
    reassembly = replace(reassembly, source="replay")
    if jobs == 1:
        parts = [_scan(path, make_pipeline, reassembly, 0, 1)]
    else:
        parts = _scan_in_workers(path, make_pipeline, reassembly, jobs)
    report, events = parts[0]
    for other, more in parts[1:]:
        events += more
        report.chunks += other.chunks
        report.ignored_connections += other.ignored_connections
        for name, count in other.tcp.items():
            if name not in _UNSHARED_STATS:
                report.tcp[name] += count
    for name in _UNSHARED_STATS[1:]:
        report.tcp.pop(name, None)
    report.events = len(events)
    if decryptor is not None:
        pipeline = make_pipeline()
        for chunk in decryptor:
            report.chunks += 1
            events += _events(pipeline.feed(chunk), report)
        events += _events(pipeline.close(), report)
        report.tls_sessions = len(decryptor.sessions)
        report.tls_missing_keys = decryptor.missing_keys
        if decryptor.tshark_error and report.error is None:
            report.error = f"tshark: {decryptor.tshark_error}"
    events.sort(key=lambda e: (e.started_ns, e.id))
    report.events = len(events)
    for event in events:
        on_event(event)
    report.elapsed_s = time.perf_counter() - started
    return report


def _scan(
    path: Path,
    make_pipeline: Callable[[], ChunkPipeline],
    reassembly: ReassemblySettings,
    part: int,
    parts: int,
) -> tuple[ReplayReport, list[UsageEvent]]:
    """The plaintext pass: frames → reassembly → pipeline, for this part's flows."""
    report = ReplayReport(path=path)
    events: list[UsageEvent] = []
    pipeline = make_pipeline()
    owns = None if parts == 1 else partial(_owns, part=part, parts=parts)
    reasm = TcpReassembler(reassembly, owns=owns)
    feed_pipeline = pipeline.feed

    def push(chunks: list[Chunk]) -> None:
        report.chunks += len(chunks)
        for chunk in chunks:
            results = feed_pipeline(chunk)
            for result in results:
                if isinstance(result, IgnoreConnection):
                    report.ignored_connections += 1
                    reasm.ignore(result.conn)
                else:
                    events.append(result)
        chunks.clear()

    capture = CaptureFile(path)
    report.format = capture.format
    try:
        with capture:
            scan_capture(capture, reasm, push, report.skipped_frames)
    except ReplayError as exc:
        report.error = str(exc)
    report.frames = capture.frames_read
    push(reasm.out)
    push(reasm.close())
    report.tcp = reasm.stats
    events += _events(pipeline.close(), report)
    return report, events


def _owns(flow_key: bytes, *, part: int, parts: int) -> bool:
    # crc32, not hash(): the same in every process whatever PYTHONHASHSEED says.
    return zlib.crc32(flow_key) % parts == part


def _scan_in_workers(
    path: Path,
    make_pipeline: Callable[[], ChunkPipeline],
    reassembly: ReassemblySettings,
    jobs: int,
) -> list[tuple[ReplayReport, list[UsageEvent]]]:
    # fork, not spawn: the pipeline factory is a closure and need not pickle.
    context = multiprocessing.get_context("fork")
    pipes = []
    workers = []
    for part in range(jobs):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(
            target=_worker, args=(sender, path, make_pipeline, reassembly, part, jobs)
        )
        worker.start()
        sender.close()
        pipes.append(receiver)
        workers.append(worker)
    results = []
    for receiver, worker in zip(pipes, workers, strict=True):
        try:
            result = receiver.recv()
        except EOFError:
            result = None
        worker.join()
        if not isinstance(result, tuple):
            raise ReplayError(f"{path}: replay worker failed: {result or worker.exitcode}")
        results.append(result)
    return results


def _worker(
    sender: Any,
    path: Path,
    make_pipeline: Callable[[], ChunkPipeline],
    reassembly: ReassemblySettings,
    part: int,
    parts: int,
) -> None:
    try:
        sender.send(_scan(path, make_pipeline, reassembly, part, parts))
    except BaseException as exc:  # reported by the parent, which raises ReplayError
        sender.send(f"{type(exc).__name__}: {exc}")
    finally:
        sender.close()


def _events(outputs: list[PipelineOutput], report: ReplayReport) -> list[UsageEvent]:
    events = []
    for out in outputs:
        if isinstance(out, IgnoreConnection):
            report.ignored_connections += 1
        else:
            events.append(out)
    return events
