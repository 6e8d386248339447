"""Replay a capture file through the pipeline: the offline twin of live capture.

Data flow, all in the calling thread::

    CaptureFile ─Frame─▶ parse_frame ─Segment─▶ TcpReassembler ─Chunk─┐
    TlsDecryptor (tshark + key log) ──────────────────────── Chunk ────┼─▶ pipeline ─▶ on_event
                                                                       ┘
Plaintext flows come from our own reassembly; TLS flows, when a key log is
given, come decrypted from tshark (their raw, encrypted flows are judged
"not HTTP" by the pipeline and ignored). The pipeline is the same object the
daemon uses, so a capture replayed gives the events the daemon would have
stored. Damage in the file stops reading, but everything decoded before it is
still flushed through the pipeline and reported, and ``error`` says what broke.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lumen_sniff.capture.keylog import TlsDecryptor, TlsSession
from lumen_sniff.capture.packets import parse_frame
from lumen_sniff.capture.pcapfile import CaptureFile
from lumen_sniff.capture.tcp import ReassemblySettings, TcpReassembler
from lumen_sniff.errors import ReplayError
from lumen_sniff.model import Chunk, IgnoreConnection, PipelineOutput, UsageEvent

__all__ = ["ChunkPipeline", "ReplayReport", "replay_file"]


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
    pipeline: ChunkPipeline,
    on_event: Callable[[UsageEvent], None],
    *,
    keylog: Path | None = None,
    reassembly: ReassemblySettings | None = None,
) -> ReplayReport:
    """Replay ``path`` through ``pipeline``, calling ``on_event`` for each event.

    Args:
        path: a pcap or pcapng file.
        pipeline: a fresh pipeline; it is closed at the end.
        on_event: receives each UsageEvent as soon as it is finished.
        keylog: an SSLKEYLOGFILE to decrypt TLS sessions with (needs tshark).
        reassembly: TCP limits (``source`` is forced to "replay").

    Returns:
        The report; ``report.error`` is set when the file was damaged.

    Raises:
        ReplayError: the file cannot be opened or is not a capture file.
        KeylogError: the key log cannot be read, or tshark is missing.
    """
    started = time.perf_counter()
    report = ReplayReport(path=path)
    decryptor = TlsDecryptor(path, keylog) if keylog is not None else None
    settings = reassembly or ReassemblySettings()
    reasm = TcpReassembler(
        ReassemblySettings(
            source="replay",
            max_flows=settings.max_flows,
            max_pending_bytes=settings.max_pending_bytes,
            max_pending_pieces=settings.max_pending_pieces,
            idle_timeout_ns=settings.idle_timeout_ns,
        )
    )

    def push(chunks: list[Chunk]) -> None:
        report.chunks += len(chunks)
        for chunk in chunks:
            _deliver(pipeline.feed(chunk), reasm, report, on_event)

    capture = CaptureFile(path)
    report.format = capture.format
    skipped = report.skipped_frames
    try:
        with capture:
            for linktype, ts_ns, data, _wire_len in capture:
                segment = parse_frame(linktype, data)
                if isinstance(segment, str):
                    skipped[segment] += 1
                    continue
                chunks = reasm.feed(segment, ts_ns)
                if chunks:
                    push(chunks)
    except ReplayError as exc:
        report.error = str(exc)
    report.frames = capture.frames_read
    push(reasm.close())
    report.tcp = reasm.stats
    if decryptor is not None:
        for chunk in decryptor:
            push([chunk])
        report.tls_sessions = len(decryptor.sessions)
        report.tls_missing_keys = decryptor.missing_keys
        if decryptor.tshark_error and report.error is None:
            report.error = f"tshark: {decryptor.tshark_error}"
    _deliver(pipeline.close(), reasm, report, on_event)
    report.elapsed_s = time.perf_counter() - started
    return report


def _deliver(
    outputs: list[PipelineOutput],
    reasm: TcpReassembler,
    report: ReplayReport,
    on_event: Callable[[UsageEvent], None],
) -> None:
    for out in outputs:
        if isinstance(out, IgnoreConnection):
            report.ignored_connections += 1
            reasm.ignore(out.conn)
        else:
            report.events += 1
            on_event(out)
