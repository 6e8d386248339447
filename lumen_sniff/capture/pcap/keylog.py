"""TLS decryption of a capture file with an SSLKEYLOGFILE, through tshark.

Strategy: one tshark pass over the file with the key log
(``-o tls.keylog_file:…``) and with the ``http`` and ``http2`` dissectors
turned off, so every decrypted application-data record is handed to the
generic ``data`` dissector and comes out as the ``data.data`` field: the
plaintext bytes exactly as the application wrote them, with the frame's time,
TCP stream number and endpoints (``-T fields``). tshark does the TCP and TLS
record reassembly; this module only orders the bytes per direction into
Chunks (``ConnKey(source="replay", handle=TLS_HANDLE_BASE + tcp.stream)``), so
the same pipeline as live capture parses HTTP/1.1 and HTTP/2 from them.

tshark is found the way pyshark finds it (``pyshark.tshark.tshark``), so its
configured path and the ``TSHARK`` search rules apply. A ``follow,tls,raw``
pass per stream would give the same bytes but no timestamps, and would read the
file once per stream.

A session whose Client Hello random has no secrets in the key log, or whose
application data tshark could not decrypt, is reported in
:attr:`TlsDecryptor.missing_keys`, one entry per session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lumen_sniff.errors import KeylogError
from lumen_sniff.model import Chunk, ConnKey, Direction

__all__ = ["TLS_HANDLE_BASE", "TlsDecryptor", "TlsSession", "read_keylog"]

TLS_HANDLE_BASE = 1 << 40
"""Added to tshark's tcp.stream to number decrypted connections apart from raw flows."""

_LABELS = frozenset(
    {
        "CLIENT_RANDOM",  # TLS 1.2 master secret
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
    }
)
_FIELDS = (
    "frame.time_epoch",
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tls.handshake.type",
    "tls.handshake.random",
    "tls.record.content_type",
    "tls.record.opaque_type",
    "data.data",
)
_APP_DATA = "23"
_CLIENT_HELLO = "1"


def read_keylog(path: Path) -> frozenset[str]:
    """Read an SSLKEYLOGFILE and return the client randoms it has secrets for.

    Args:
        path: the key log (NSS key log format).

    Returns:
        Lower-case hex client randoms.

    Raises:
        KeylogError: the file cannot be read or holds no TLS secrets.
    """
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise KeylogError(f"{path}: cannot read key log: {exc.strerror or exc}") from exc
    randoms = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in _LABELS and len(parts[1]) == 64:
            randoms.add(parts[1].lower())
    if not randoms:
        raise KeylogError(f"{path}: not a TLS key log (no CLIENT_RANDOM or *_SECRET lines)")
    return frozenset(randoms)


@dataclass(kw_only=True, slots=True)
class TlsSession:
    """One TLS connection seen in the capture (filled in while decrypting)."""

    stream: int
    """tshark's tcp.stream number."""
    client: tuple[str, int] | None = None
    """Client (address, port): the Client Hello sender."""
    server: tuple[str, int] | None = None
    """Server (address, port)."""
    client_random: str | None = None
    """Client Hello random, hex; None when the handshake was not captured."""
    app_records: int = 0
    """Application-data records seen."""
    decrypted_bytes: int = 0
    """Plaintext bytes recovered."""
    offsets: dict[Direction, int] = field(default_factory=dict)
    """Bytes delivered so far per direction."""
    last_ts_ns: int = 0
    """Time of its last TLS frame."""

    @property
    def keys_missing(self) -> bool:
        """Application data was seen but none of it could be decrypted."""
        return self.app_records > 0 and self.decrypted_bytes == 0


class TlsDecryptor:
    """Iterate a capture's decrypted TLS streams as Chunks, in capture order."""

    def __init__(self, capture: Path, keylog: Path, *, tshark: str | None = None) -> None:
        """Check the key log and find tshark; nothing runs until iteration.

        Raises:
            KeylogError: unreadable key log, or tshark missing.
        """
        self.capture = capture
        self.keylog = keylog
        self.known_randoms = read_keylog(keylog)
        self.tshark = tshark or _find_tshark()
        self.sessions: dict[int, TlsSession] = {}
        """Every TLS session seen, by tcp.stream."""
        self.tshark_error = ""
        """tshark's complaint when it stopped early (damaged file), else ""."""

    @property
    def missing_keys(self) -> list[TlsSession]:
        """Sessions that carried application data but could not be decrypted."""
        return [s for s in self.sessions.values() if s.keys_missing]

    def __iter__(self) -> Iterator[Chunk]:
        """Run tshark and yield the decrypted bytes, then one closing Chunk per session."""
        command = [
            self.tshark, "-n", "-r", str(self.capture),
            "-o", f"tls.keylog_file:{self.keylog}",
            "--disable-protocol", "http", "--disable-protocol", "http2",
            "-Y", "tls", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
        ]  # fmt: skip
        for name in _FIELDS:
            command += ["-e", name]
        env = {**os.environ, "LC_ALL": "C"}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            for line in proc.stdout:
                yield from self._line(line.rstrip("\n").split("\t"))
            errors = proc.stderr.read()
        if proc.returncode:
            self.tshark_error = " ".join(
                line for line in errors.splitlines() if "Running as user" not in line
            ).strip() or f"tshark exited with status {proc.returncode}"
        for session in self.sessions.values():
            if session.offsets and session.server is not None:
                yield Chunk(
                    conn=ConnKey(source="replay", pid=0, handle=TLS_HANDLE_BASE + session.stream),
                    direction=Direction.EGRESS,
                    offset=session.offsets.get(Direction.EGRESS, 0),
                    ts_ns=session.last_ts_ns,
                    data=b"",
                    closed=True,
                    peer=session.server,
                )

    def _line(self, cols: list[str]) -> Iterator[Chunk]:
        if len(cols) < len(_FIELDS) or not cols[1]:
            return
        ts, stream_text, ip4s, ip6s, sport, ip4d, ip6d, dport = cols[:8]
        types, randoms, ctypes, opaque_types, data = cols[8 : len(_FIELDS)]
        stream = int(stream_text)
        session = self.sessions.get(stream)
        if session is None:
            session = self.sessions[stream] = TlsSession(stream=stream)
        src = (ip4s or ip6s, int(sport))
        dst = (ip4d or ip6d, int(dport))
        seconds, _, fraction = ts.partition(".")
        ts_ns = int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])
        session.last_ts_ns = ts_ns
        if _CLIENT_HELLO in types.split(",") and session.client is None:
            session.client, session.server = src, dst
            session.client_random = randoms.split(",")[0].lower() or None
        if session.client is None:
            # Handshake not captured: the higher port is the client's.
            session.client, session.server = (src, dst) if src[1] > dst[1] else (dst, src)
        # TLS 1.3 shows records it cannot decrypt only by their outer (opaque) type.
        session.app_records += max(
            ctypes.split(",").count(_APP_DATA), opaque_types.split(",").count(_APP_DATA)
        )
        if not data:
            return
        direction = Direction.EGRESS if src == session.client else Direction.INGRESS
        for piece in data.split(","):
            payload = bytes.fromhex(piece)
            offset = session.offsets.get(direction, 0)
            session.offsets[direction] = offset + len(payload)
            session.decrypted_bytes += len(payload)
            yield Chunk(
                conn=ConnKey(source="replay", pid=0, handle=TLS_HANDLE_BASE + stream),
                direction=direction,
                offset=offset,
                ts_ns=ts_ns,
                data=payload,
                peer=session.server,
            )


def _find_tshark() -> str:
    try:
        from pyshark.tshark.tshark import get_process_path

        path: str = get_process_path()
    except Exception as exc:  # pyshark raises TSharkNotFoundException
        raise KeylogError(
            f"TLS decryption needs tshark, which was not found ({exc}): install it with "
            "`apt-get install tshark` (or `make setup-test`)"
        ) from exc
    return path
