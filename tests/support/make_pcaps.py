"""Pcap fixtures: byte-level builders for hand-made captures, and the recorder.

Builders (used by the unit tests and bench/replay.py): :func:`ipv4_tcp`,
:func:`ipv6_tcp`, :func:`frame` (link headers), :class:`Conversation` (a TCP
connection's segments with real sequence numbers), :func:`write_pcap` and
:func:`write_pcapng`.

Recorder (``python -m tests.support.make_pcaps [--out fixtures/pcap]``): runs the
real clients (tests/support/clients.py) against the stand-in server
(tests/support/standin.py) on 127.0.0.1 while dumpcap captures loopback, for
plaintext and TLS (the clients write SSLKEYLOGFILE), HTTP/1.1 and HTTP/2,
streaming and not. Then it replays every capture with ``lumen-sniff replay
--json`` and writes ``expected.json``; a test replays them again and compares.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "CAPTURES",
    "Conversation",
    "frame",
    "ipv4_tcp",
    "ipv6_tcp",
    "main",
    "write_pcap",
    "write_pcapng",
]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

CAPTURES: dict[str, dict[str, Any]] = {
    "plain.pcap": {
        "tls": False,
        "scenarios": ["ollama_chat", "ollama_chat_stream", "ollama_generate_stream",
                      "llamacpp_chat_stream", "plain_openai_chat"],
    },
    "tls.pcapng": {
        "tls": True,
        "scenarios": ["openai_chat", "openai_chat_stream_usage", "openai_responses_stream",
                      "anthropic_stream_cache_read", "gemini_generate_cached",
                      "httpx_h2_chat_stream", "curl_h2_chat", "node_fetch_chat_stream"],
    },
}
"""Fixture captures: file name → stand-in mode and the client scenarios run in order."""


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    flags: int,
    payload: bytes = b"",
    *,
    ack: int = 0,
    frag: int = 0,
    proto: int = 6,
) -> bytes:
    """An IPv4 packet carrying one TCP segment (checksums left zero)."""
    body = _tcp(sport, dport, seq % 2**32, ack, flags, payload) if proto == 6 else payload
    src_b = bytes(int(p) for p in src.split("."))
    dst_b = bytes(int(p) for p in dst.split("."))
    head = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(body), 1, frag, 64, proto, 0)
    return head + src_b + dst_b + body


def ipv6_tcp(
    src: str, dst: str, sport: int, dport: int, seq: int, flags: int, payload: bytes = b""
) -> bytes:
    """An IPv6 packet (behind one hop-by-hop header) carrying one TCP segment."""
    import ipaddress

    body = _tcp(sport, dport, seq % 2**32, 0, flags, payload)
    hop_by_hop = bytes([6, 0]) + bytes(6)  # next header TCP, length 0 (8 bytes)
    head = struct.pack("!IHBB", 6 << 28, len(hop_by_hop) + len(body), 0, 64)
    return (
        head
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + hop_by_hop
        + body
    )


def frame(linktype: int, packet: bytes, *, vlan: bool = False) -> bytes:
    """Put a link header of ``linktype`` in front of an IP packet."""
    v6 = packet[0] >> 4 == 6
    ethertype = 0x86DD if v6 else 0x0800
    if linktype == 1:
        tag = struct.pack("!HH", 0x8100, 42) if vlan else b""
        return bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + tag + struct.pack("!H", ethertype) + packet
    if linktype == 0:
        return struct.pack("<I", 10 if v6 else 2) + packet
    if linktype == 108:
        return struct.pack("!I", 24 if v6 else 2) + packet
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 772, 6, bytes(8), ethertype) + packet
    if linktype == 276:
        return struct.pack("!HHIHBB8s", ethertype, 0, 1, 772, 0, 6, bytes(8)) + packet
    if linktype in (101, 228, 229):
        return packet
    raise ValueError(f"no builder for link type {linktype}")


class Conversation:
    """One TCP connection between a client and a server, as IP packets.

    Tracks both sides' sequence numbers so tests can emit handshakes, data and
    teardown, then reorder, duplicate or drop the packets they got back.
    """

    def __init__(
        self,
        client: tuple[str, int] = ("10.0.0.1", 40000),
        server: tuple[str, int] = ("10.0.0.2", 11434),
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        v6: bool = False,
    ) -> None:
        self.client, self.server, self.v6 = client, server, v6
        self.seq = {"c": client_isn, "s": server_isn}

    def packet(self, side: str, flags: int, payload: bytes = b"", seq: int | None = None) -> bytes:
        """One packet from ``side`` ("c" or "s") at ``seq`` (default: the next)."""
        src, dst = (self.client, self.server) if side == "c" else (self.server, self.client)
        seq = self.seq[side] if seq is None else seq
        if self.v6:
            return ipv6_tcp(src[0], dst[0], src[1], dst[1], seq, flags, payload)
        return ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, flags, payload, ack=1)

    def handshake(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK."""
        out = [self.packet("c", SYN), self.packet("s", SYN | ACK)]
        self.seq["c"] += 1
        self.seq["s"] += 1
        out.append(self.packet("c", ACK))
        return out

    def send(self, side: str, data: bytes, mss: int = 1400) -> list[bytes]:
        """``data`` from ``side`` in segments of at most ``mss`` bytes."""
        out = []
        for i in range(0, len(data), mss):
            piece = data[i : i + mss]
            out.append(self.packet(side, PSH | ACK, piece))
            self.seq[side] += len(piece)
        return out

    def fin(self, side: str) -> list[bytes]:
        """A FIN from ``side``."""
        out = [self.packet(side, FIN | ACK)]
        self.seq[side] += 1
        return out


def write_pcap(
    path: Path, linktype: int, frames: Iterable[tuple[int, bytes]], *, nano: bool = True
) -> None:
    """Write a classic little-endian pcap of ``(ts_ns, frame)`` pairs."""
    with open(path, "wb") as f:
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ts_ns, data in frames:
            sec, frac = divmod(ts_ns, 10**9)
            f.write(struct.pack("<IIII", sec, frac if nano else frac // 1000, len(data), len(data)))
            f.write(data)


def _block(block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def write_pcapng(
    path: Path, linktypes: list[int], frames: Iterable[tuple[int, int, bytes]]
) -> None:
    """Write a pcapng with one interface per link type; frames are (iface, ts_ns, data).

    Interfaces use nanosecond timestamps (if_tsresol 9).
    """
    with open(path, "wb") as f:
        f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        for linktype in linktypes:
            tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
            f.write(_block(1, struct.pack("<HHI", linktype, 0, 262144) + tsresol))
        for iface, ts_ns, data in frames:
            high, low = ts_ns >> 32, ts_ns & 0xFFFFFFFF
            head = struct.pack("<IIIII", iface, high, low, len(data), len(data))
            f.write(_block(6, head + data))


# ------------------------------------------------------------------ recording

_ROOT = Path(__file__).resolve().parents[2]


def _record(name: str, spec: dict[str, Any], out: Path, work: Path) -> dict[str, Any]:
    tls = spec["tls"]
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.support.standin", "--tls" if tls else "--plain",
         "--port", "0", "--ca-dir", str(work)],
        stdout=subprocess.PIPE, text=True, cwd=_ROOT,
    )  # fmt: skip
    assert standin.stdout is not None
    ready = json.loads(standin.stdout.readline())
    port, ca, base_url = ready["port"], ready["ca"], ready["base_url"]
    capture = out / name
    keylog = out / (name.split(".")[0] + ".keys")
    keylog.unlink(missing_ok=True)
    dumpcap = subprocess.Popen(
        ["dumpcap", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(capture),
         *(["-P"] if name.endswith(".pcap") else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)  # dumpcap is listening
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    if tls:
        env["SSLKEYLOGFILE"] = str(keylog)
        env["NODE_OPTIONS"] = f"--tls-keylog={keylog}"
    calls = []
    try:
        for scenario in spec["scenarios"]:
            command = [sys.executable, "-m", "tests.support.clients", scenario,
                       "--base-url", base_url, *(["--ca", ca] if ca else [])]  # fmt: skip
            done = subprocess.run(command, env=env, cwd=_ROOT, capture_output=True, text=True,
                                  timeout=120, check=True)  # fmt: skip
            result = json.loads(done.stdout.strip().splitlines()[-1])
            calls.append({k: result.get(k) for k in
                          ("scenario", "client", "model", "status", "stream", "http_version",
                           "usage", "error", "calls")})  # fmt: skip
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(10)
        standin.send_signal(signal.SIGINT)
        standin.wait(10)
    replay = subprocess.run(
        [str(Path(sys.executable).parent / "lumen-sniff"), "replay", str(capture), "--json",
         *(["--keylog", str(keylog)] if tls else [])],
        cwd=_ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    events = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
    return {"keylog": keylog.name if tls else None, "clients": calls, "events": events}


def main(argv: list[str] | None = None) -> int:
    """Record every capture in :data:`CAPTURES` and write ``expected.json``."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.make_pcaps")
    parser.add_argument("--out", type=Path, default=_ROOT / "fixtures" / "pcap")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    expected = {}
    with tempfile.TemporaryDirectory() as work:
        for name, spec in CAPTURES.items():
            expected[name] = _record(name, spec, args.out, Path(work))
            print(f"{name}: {len(expected[name]['events'])} events", file=sys.stderr)
    text = json.dumps(expected, indent=1, sort_keys=True) + "\n"
    (args.out / "expected.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
