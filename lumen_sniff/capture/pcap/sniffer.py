"""Live plaintext capture: libpcap through scapy's AsyncSniffer, Chunks out.

Threading: scapy's AsyncSniffer runs the capture loop in its own thread. The
kernel applies the capture filter (compiled by libpcap, e.g. ``tcp port 11434
or tcp port 8000``), so unrelated packets never reach Python. For each readable
wakeup the sniffer thread drains libpcap's buffer and, per frame, does only:
raw bytes → :func:`parse_frame` → :class:`TcpReassembler` → ``chunks`` (a
bounded queue). A full queue drops the Chunk and counts it (the pipeline sees
the offset jump as a gap). No scapy Packet is ever built: the socket handed to
AsyncSniffer reads frames itself and returns nothing to dissect.

The pipeline's :meth:`ignore` requests arrive from the daemon's loop thread;
they are queued and applied by the sniffer thread, which alone touches the
reassembler while capture runs.
"""

from __future__ import annotations

import collections
import ctypes
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lumen_sniff.capture.tcp.reassembler import ReassemblySettings, TcpReassembler
from lumen_sniff.capture.tcp.segments import parse_frame
from lumen_sniff.config import DEFAULT_PCAP_PORTS
from lumen_sniff.errors import CaptureError
from lumen_sniff.model import Chunk, ConnKey

__all__ = ["Sniffer", "SnifferSettings", "port_filter"]

_SNAPLEN = 262_144
"""Whole frames, loopback's 64 KiB ones included (scapy's default cuts them)."""
_BURST = 4096
"""Frames read per wakeup at most, so stop() is never starved."""


def port_filter(ports: tuple[int, ...] | list[int]) -> str:
    """The capture filter for plaintext LLM servers on ``ports``."""
    return " or ".join(f"tcp port {port}" for port in ports)


@dataclass(frozen=True, kw_only=True, slots=True)
class SnifferSettings:
    """What the packet capture listens to."""

    iface: str = "any"
    """Interface name, or "any" for all (Linux cooked capture)."""
    ports: tuple[int, ...] = DEFAULT_PCAP_PORTS
    """Server ports to capture, when ``bpf_filter`` is not given."""
    bpf_filter: str | None = None
    """A libpcap filter expression that replaces ``ports``."""


class Sniffer:
    """Capture plaintext LLM traffic on ``iface`` and reassemble it into Chunks."""

    source = "pcap"
    """ConnKey.source of the Chunks made (the daemon routes ignore requests by it)."""

    def __init__(
        self,
        iface: str = "any",
        ports: tuple[int, ...] = DEFAULT_PCAP_PORTS,
        bpf_filter: str | None = None,
        *,
        queue_size: int = 65_536,
        reassembly: ReassemblySettings | None = None,
    ) -> None:
        """Configure; nothing is opened until :meth:`start`.

        Args:
            iface: interface name, or "any" for all (Linux cooked capture).
            ports: server ports to capture, when ``bpf_filter`` is not given.
            bpf_filter: a libpcap filter expression that replaces ``ports``.
            queue_size: Chunks that may wait for the pipeline before drops.
            reassembly: TCP limits (``source`` is forced to "pcap").
        """
        self.iface = iface
        self.filter = bpf_filter or port_filter(ports)
        self.chunks: queue.Queue[Chunk] = queue.Queue(queue_size)
        settings = reassembly or ReassemblySettings()
        self._reasm = TcpReassembler(
            ReassemblySettings(
                source=self.source,
                max_flows=settings.max_flows,
                max_pending_bytes=settings.max_pending_bytes,
                max_pending_pieces=settings.max_pending_pieces,
                idle_timeout_ns=settings.idle_timeout_ns,
            )
        )
        self.frames = 0
        self.skipped: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.linktype: int | None = None
        self._ignores: collections.deque[ConnKey] = collections.deque()
        self._sniffer: Any = None
        self._socket: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SnifferSettings) -> Sniffer:
        """A sniffer configured by ``settings`` (see :mod:`lumen_sniff.stagesettings`)."""
        return cls(settings.iface, settings.ports, settings.bpf_filter)

    def start(self) -> None:
        """Open the interface, set the filter and start the capture thread.

        Raises:
            CaptureError: libpcap missing, no such interface, no permission, or
                a filter libpcap rejects.
        """
        try:
            self._socket = _open_tap(self.iface, self.filter, self._on_frame)
        except Exception as exc:  # scapy/libpcap raise OSError, Scapy_Exception…
            raise CaptureError(f"pcap capture on {self.iface!r} ({self.filter}): {exc}") from exc
        self.linktype = self._socket.linktype
        from scapy.sendrecv import AsyncSniffer

        self._sniffer = AsyncSniffer(opened_socket=self._socket, store=False, prn=None)
        self._sniffer.start()

    def stop(self) -> None:
        """Stop capturing and flush every open flow's Chunks into ``chunks``."""
        if self._sniffer is not None:
            if self._sniffer.running:
                self._sniffer.stop()
            else:
                self._sniffer.join()
            self._sniffer = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        with self._lock:
            self._enqueue(self._reasm.close())

    def ignore(self, conn: ConnKey) -> None:
        """Stop reassembling ``conn`` (the pipeline found it is not LLM traffic)."""
        self._ignores.append(conn)

    def status(self) -> dict[str, Any]:
        """Counters for /api/status: frames, skipped frames and drops by reason."""
        return {
            "iface": self.iface,
            "filter": self.filter,
            "linktype": self.linktype,
            "running": bool(self._sniffer is not None and self._sniffer.running),
            "frames": self.frames,
            "skipped": dict(self.skipped),
            "flows": self._reasm.flow_count,
            "tcp": dict(self._reasm.stats),
            "queued": self.chunks.qsize(),
            "dropped": dict(self.dropped),
        }

    # ---------------------------------------------------------- sniffer thread

    def _on_frame(self, linktype: int, ts_ns: int, frame: bytes) -> None:
        self.frames += 1
        while self._ignores:
            self._reasm.ignore(self._ignores.popleft())
        segment = parse_frame(linktype, frame)
        if isinstance(segment, str):
            self.skipped[segment] += 1
            return
        with self._lock:
            chunks = self._reasm.feed(segment, ts_ns)
        if chunks:
            self._enqueue(chunks)

    def _enqueue(self, chunks: list[Chunk]) -> None:
        put = self.chunks.put_nowait
        for chunk in chunks:
            try:
                put(chunk)
            except queue.Full:
                self.dropped["queue_full_chunks"] += 1
                self.dropped["queue_full_bytes"] += len(chunk.data)


def _open_tap(iface: str, bpf_filter: str, on_frame: Any) -> Any:
    """A scapy listen socket on libpcap that hands raw frames to ``on_frame``."""
    from scapy.config import conf

    conf.use_pcap = True  # libpcap: "any", kernel filters, link type per capture
    from scapy.arch.libpcap import L2pcapListenSocket, open_pcap
    from scapy.libs.winpcapy import pcap_next_ex, pcap_pkthdr, pcap_setnonblock

    class _Tap(L2pcapListenSocket):
        def __init__(self) -> None:
            self.type = 0x0003
            self.outs = None
            self.iface = iface
            self.promisc = False
            self.monitor = None
            fd = open_pcap(device=iface, snaplen=_SNAPLEN, promisc=False, to_ms=100, monitor=None)
            # Not the base __init__: it looks up a scapy layer for the link
            # type (and warns when none is loaded); frames are never dissected.
            self.pcap_fd = fd
            self.LL = conf.raw_layer
            self.lvl = 2
            fd.setfilter(bpf_filter)
            errbuf = ctypes.create_string_buffer(256)
            pcap_setnonblock(fd.pcap, 1, errbuf)
            self.linktype = fd.datalink()
            self._header = ctypes.POINTER(pcap_pkthdr)()
            self._data = ctypes.POINTER(ctypes.c_ubyte)()

        def recv(self, x: int = 0, **kwargs: Any) -> None:
            # Drain what libpcap holds; returning None gives scapy nothing to dissect.
            pcap = self.pcap_fd.pcap
            header, data = self._header, self._data
            for _ in range(_BURST):
                if pcap_next_ex(pcap, ctypes.byref(header), ctypes.byref(data)) <= 0:
                    return
                head = header.contents
                ts_ns = head.ts.tv_sec * 1_000_000_000 + head.ts.tv_usec * 1000
                on_frame(self.linktype, ts_ns, ctypes.string_at(data, head.caplen))

    return _Tap()
