"""Blind spots: processes that talk TLS to an LLM API whose plaintext no probe read.

Strategy: the socket program reports every new TCP client connection's
ClientHello (host from its SNI) and, when it ends, its byte counts. The uprobe
capture reports each new SSL connection's first plaintext write (offset 0,
egress) with its pid and kernel time. A connection to a known LLM host is
*seen* when its process wrote plaintext on a new SSL connection after the
ClientHello; the judgement waits for the connection to close (plus a short
grace, as the two ring buffers are read by different threads) or for it to be
open for ``open_grace_ns``. Unseen connections are summed per (process,
service, exe, host) with the reason the caller found at ClientHello time,
while the process surely still existed.

Correlating by pid and time, not by socket, is the price of having no kprobes:
a process that mixes a hooked and an unhooked TLS stack at the same instant
can have an unseen connection judged seen. The opposite error cannot happen:
a connection whose process wrote no plaintext at all is never called seen.

Pure: times come in as arguments, no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lumen_sniff.model import ProcessInfo
from lumen_sniff.protocol.tlshello import client_hello_sni
from lumen_sniff.providers.hosts import provider_for_host

__all__ = ["RUNTIME_REASONS", "BlindSpot", "UnseenTracker", "blind_reason"]

_SECOND_NS = 1_000_000_000

RUNTIME_REASONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"/libjvm\.so$|/bin/java$"),
        "Java JSSE not supported: TLS runs in Java code, no native library to hook",
    ),
    (re.compile(r"/libnss3\.so$"), "NSS not hooked"),
    (re.compile(r"/libwolfssl\.so[.\d]*$"), "wolfSSL not hooked"),
    (re.compile(r"/libmbedtls\.so[.\d]*$"), "mbed TLS not hooked"),
)
"""A mapped file (or executable) path → why a runtime's TLS cannot be read.
Tried after the :class:`~lumen_sniff.capture.bpf.unhookable.Unhookable` registry,
so a row that learns to hook a runtime needs only to stop matching here."""

FILTERED = "not selected by the capture filters (--pid/--comm/--exe)"
HOOKED_BUT_UNSEEN = (
    "a hooked TLS library is loaded, but this connection's plaintext was not seen "
    "(another TLS stack in the process?)"
)
NOTHING_HOOKABLE = "no TLS library lumen-sniff can hook in this process"


def blind_reason(
    *,
    registered: str | None,
    exe: str | None,
    mapped: Sequence[str],
    filtered: bool,
    hooked: bool,
) -> str:
    """Why a process's TLS plaintext is not read, most specific first.

    Args:
        registered: What the unhookable registry says of its files, if anything.
        exe: Its executable path.
        mapped: Paths of the files it maps.
        filtered: The capture's --pid/--comm/--exe filters leave it out.
        hooked: It maps a file that is hooked.

    Returns:
        A one-line reason.
    """
    if filtered:
        return FILTERED
    if registered:
        return registered
    for pattern, reason in RUNTIME_REASONS:
        if any(pattern.search(p) for p in (exe or "", *mapped)):
            return reason
    return HOOKED_BUT_UNSEEN if hooked else NOTHING_HOOKABLE


@dataclass(kw_only=True, slots=True)
class BlindSpot:
    """Unseen connections of one process (by name, service, exe) to one host."""

    process: str
    """Process name."""
    service: str | None
    """Service name (see :mod:`lumen_sniff.capture.service`)."""
    exe: str | None
    """Executable path."""
    host: str
    """Host from the ClientHello's SNI."""
    provider: str
    """The LLM provider that host belongs to."""
    reason: str
    """Why its plaintext cannot be read."""
    connections: int = 0
    """Connections judged unseen."""
    bytes_sent: int = 0
    """TCP payload bytes sent on them (counted when they close)."""
    bytes_received: int = 0
    """TCP payload bytes received on them."""
    first_seen_ns: int = 0
    """Wall-clock time of the first ClientHello."""
    last_seen_ns: int = 0
    """Wall-clock time of the latest ClientHello or close."""
    pids: set[int] = field(default_factory=set)
    """Processes seen (the latest few)."""


@dataclass(kw_only=True, slots=True)
class _Pending:
    pid: int
    hello_ns: int
    """Kernel time of the ClientHello."""
    wall_ns: int
    host: str
    provider: str
    process: ProcessInfo
    reason: str
    closed_ns: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0


_GroupKey = tuple[str, str | None, str | None, str]


class UnseenTracker:
    """Judges TLS connections to LLM hosts seen or unseen, and sums the unseen ones.

    Args:
        hosts: Extra API hosts → provider (config ``[providers.hosts]``).
        close_grace_ns: Wait after a close before judging (the other ring buffer).
        open_grace_ns: Judge a connection still open after this long.
        max_pending: Connections awaiting judgement; more are counted and dropped.
        max_groups: Rows kept; connections of further rows are counted as dropped.
    """

    def __init__(
        self,
        hosts: Mapping[str, str] | None = None,
        *,
        close_grace_ns: int = _SECOND_NS,
        open_grace_ns: int = 5 * _SECOND_NS,
        max_pending: int = 4096,
        max_groups: int = 256,
    ) -> None:
        self._hosts = dict(hosts or {})
        self._close_grace = close_grace_ns
        self._open_grace = open_grace_ns
        self._max_pending = max_pending
        self._max_groups = max_groups
        self._pending: dict[int, _Pending] = {}
        self._judged: dict[int, _GroupKey] = {}  # open and unseen: bytes come at close
        self._plaintext: dict[int, int] = {}  # pid → kernel time of its latest new SSL write
        self.groups: dict[_GroupKey, BlindSpot] = {}
        self.counters = {
            "llm_connections": 0,
            "seen": 0,
            "unseen": 0,
            "other_hosts": 0,
            "no_sni": 0,
            "dropped": 0,
        }

    def host_of(self, hello: bytes) -> tuple[str, str] | None:
        """(host, provider) of a ClientHello to a known LLM host, else None (counted)."""
        host = client_hello_sni(hello)
        if host is None:
            self.counters["no_sni"] += 1
            return None
        provider = provider_for_host(host, self._hosts)
        if provider is None:
            self.counters["other_hosts"] += 1
            return None
        return host, provider

    def hello(
        self,
        *,
        sock: int,
        ts_ns: int,
        wall_ns: int,
        host: str,
        provider: str,
        process: ProcessInfo,
        reason: str,
    ) -> None:
        """A new connection of ``process`` to an LLM host sent its ClientHello."""
        self.counters["llm_connections"] += 1
        if len(self._pending) >= self._max_pending:
            self.counters["dropped"] += 1
            return
        self._pending[sock] = _Pending(
            pid=process.pid,
            hello_ns=ts_ns,
            wall_ns=wall_ns,
            host=host,
            provider=provider,
            process=process,
            reason=reason,
        )

    def plaintext(self, pid: int, ts_ns: int) -> None:
        """``pid`` wrote the first plaintext of a new SSL connection at kernel time ``ts_ns``."""
        if ts_ns > self._plaintext.get(pid, 0):
            self._plaintext[pid] = ts_ns
        if len(self._plaintext) > 65536:
            self._plaintext.clear()  # bounded; the cost is a rare false "unseen"

    def close(self, *, sock: int, ts_ns: int, wall_ns: int, sent: int, received: int) -> None:
        """A connection that sent a ClientHello left ESTABLISHED."""
        pending = self._pending.get(sock)
        if pending is not None:
            pending.closed_ns = ts_ns
            pending.bytes_sent, pending.bytes_received = sent, received
            return
        key = self._judged.pop(sock, None)
        spot = self.groups.get(key) if key is not None else None
        if spot is not None:
            spot.bytes_sent += sent
            spot.bytes_received += received
            spot.last_seen_ns = max(spot.last_seen_ns, wall_ns)

    def next_due_ns(self) -> int | None:
        """Kernel time at which :meth:`judge` next has a connection to judge; None: none."""
        return min(
            (
                p.closed_ns + self._close_grace
                if p.closed_ns is not None
                else p.hello_ns + self._open_grace
                for p in self._pending.values()
            ),
            default=None,
        )

    def judge(self, now_ns: int) -> None:
        """Judge every connection whose wait is over (``now_ns``: kernel time)."""
        for sock, p in list(self._pending.items()):
            if p.closed_ns is not None:
                if now_ns < p.closed_ns + self._close_grace:
                    continue
            elif now_ns < p.hello_ns + self._open_grace:
                continue
            del self._pending[sock]
            if self._plaintext.get(p.pid, 0) >= p.hello_ns:
                self.counters["seen"] += 1
                continue
            self.counters["unseen"] += 1
            self._count(sock, p)

    def _count(self, sock: int, p: _Pending) -> None:
        proc = p.process
        key: _GroupKey = (proc.comm, proc.service, proc.exe, p.host)
        spot = self.groups.get(key)
        if spot is None:
            if len(self.groups) >= self._max_groups:
                self.counters["dropped"] += 1
                return
            spot = self.groups[key] = BlindSpot(
                process=proc.comm,
                service=proc.service,
                exe=proc.exe,
                host=p.host,
                provider=p.provider,
                reason=p.reason,
                first_seen_ns=p.wall_ns,
            )
        spot.reason = p.reason  # the latest judgement
        spot.connections += 1
        spot.bytes_sent += p.bytes_sent
        spot.bytes_received += p.bytes_received
        spot.last_seen_ns = max(spot.last_seen_ns, p.wall_ns)
        if len(spot.pids) < 16:
            spot.pids.add(p.pid)
        if p.closed_ns is None:
            self._judged[sock] = key
            if len(self._judged) > self._max_pending:
                self._judged.pop(next(iter(self._judged)))
