"""Which sockets of a process are its LLM connections, and destroying them. Linux /proc + ss.

Strategy (user space, at the time an event arrives): an event says which
process (pid) called which host (the ``Host`` header: a name or address, and a
port unless it is the scheme's default). The
process's TCP sockets are its ``socket:[inode]`` descriptors in
``/proc/PID/fd`` matched against ``/proc/PID/net/tcp`` and ``tcp6`` (read
through the pid, so a container's network namespace is the right one).
Its ESTABLISHED peers (on the port, when the header names one) are
candidates; a candidate is an LLM endpoint when its address is the host itself
(an address literal) or one of the host name's addresses, or, when the name does
not resolve here (split DNS), when it is the only candidate on the named port.
Without a port in the header, port 443 wins when present; otherwise every
connection of that process to that address counts (a process talking to the
same address on another port too, e.g. a local database, would have that port
blocked as well while it is blocked). Events arrive once the response has ended, and SDKs keep
their connection alive, so the socket is almost always still open; when it is
not, the host's resolved addresses are used.

Why not correlate inside the kernel (SSL call → fd → socket through syscall
tracepoints)? It would add per-syscall tracepoints to every process on the
host, on the hot path, to learn something needed once per (process, host),
and it would change the capture program the whole project depends on. This
lookup costs one /proc walk per (pid, host) per :data:`RELEARN_S`.

Destroying: one ``SOCK_DESTROY`` request per socket over sock_diag netlink,
naming its exact 4-tuple (what ``ss -K`` sends, without a fork and exec;
needs ``CONFIG_INET_DIAG_DESTROY`` and CAP_NET_ADMIN): the application's next
read or write fails (``ECONNABORTED``), so a keep-alive connection cannot carry
the next call past a block.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RELEARN_S", "TcpConn", "destroy", "llm_peers", "parse_host", "tcp_conns"]

_NETLINK_SOCK_DIAG = 4
_SOCK_DESTROY = 21
_NLMSG_ERROR = 2
_NLM_F_REQUEST_ACK = 0x1 | 0x4
RELEARN_S = 5.0
"""Minimum time between two lookups for the same (pid, host)."""
_ESTABLISHED = "01"


@dataclass(frozen=True, kw_only=True, slots=True)
class TcpConn:
    """One established TCP connection of a process."""

    local: tuple[str, int]
    """Local address and port."""
    remote: tuple[str, int]
    """Peer address and port."""
    family: int = socket.AF_INET
    """Socket family (an IPv4 peer of an AF_INET6 socket is an IPv4-mapped address)."""


def parse_host(host: str) -> tuple[str, int | None]:
    """``name[:port]`` or ``[v6][:port]`` → (name, port or None when not given)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def _addr(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc prints IPv6 as four host-order (little-endian) 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    ip = ipaddress.IPv6Address(words)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ip)


def _endpoint(text: str) -> tuple[str, int]:
    hex_addr, hex_port = text.split(":")
    return _addr(hex_addr), int(hex_port, 16)


def tcp_conns(pid: int, proc: Path = Path("/proc")) -> list[TcpConn]:
    """The established TCP connections whose sockets ``pid`` holds (empty if it is gone)."""
    base = proc / str(pid)
    inodes = set()
    try:
        for fd in os.listdir(base / "fd"):
            try:
                target = os.readlink(base / "fd" / fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    out = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = (base / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == _ESTABLISHED and f[9] in inodes:
                out.append(TcpConn(local=_endpoint(f[1]), remote=_endpoint(f[2]), family=family))
    return out


def _resolve(name: str, port: int) -> set[str]:
    try:
        ipaddress.ip_address(name)
        return {name}
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {str(info[4][0]) for info in infos}


def llm_peers(pid: int, host: str, proc: Path = Path("/proc")) -> set[tuple[str, int]]:
    """The (address, port) pairs ``pid`` reaches ``host`` at (see the module docstring)."""
    name, port = parse_host(host)
    resolved = _resolve(name, port or 443)
    peers = {c.remote for c in tcp_conns(pid, proc)}
    if port is not None:
        peers = {p for p in peers if p[1] == port}
    chosen = {p for p in peers if p[0] in resolved}
    if port is None and any(p[1] == 443 for p in chosen):
        chosen = {p for p in chosen if p[1] == 443}  # the Host header omits only :443
    if not chosen and not resolved and port is not None and len(peers) == 1:
        chosen = peers
    return chosen or {(a, port or 443) for a in resolved}


def destroy(pids: Set[int], endpoints: Set[tuple[str, int]], proc: Path = Path("/proc")) -> int:
    """Destroy the established connections of ``pids`` to ``endpoints``; how many."""
    done = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        for pid in pids:
            for c in tcp_conns(pid, proc):
                if c.remote in endpoints and _sock_destroy(nl, c) == 0:
                    done += 1
    return done


def _sock_destroy(nl: socket.socket, c: TcpConn) -> int:
    """One SOCK_DESTROY request (what ``ss -K`` sends); the kernel's errno, 0 on success."""

    def packed(addr: str) -> bytes:
        raw = ipaddress.ip_address(addr).packed
        if c.family == socket.AF_INET6 and len(raw) == 4:
            raw = b"\0" * 10 + b"\xff\xff" + raw  # IPv4-mapped, as the socket holds it
        return raw.ljust(16, b"\0")

    # struct inet_diag_req_v2 + inet_diag_sockid: ports and addresses big-endian,
    # any state, no interface, no cookie (INET_DIAG_NOCOOKIE).
    sockid = struct.pack(
        "!HH16s16s", c.local[1], c.remote[1], packed(c.local[0]), packed(c.remote[0])
    ) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
    req = struct.pack("=BBBxI", c.family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + sockid
    nl.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DESTROY, _NLM_F_REQUEST_ACK, 1, 0) + req)
    answer = nl.recv(4096)
    kind = struct.unpack_from("=H", answer, 4)[0]
    return -struct.unpack_from("=i", answer, 16)[0] if kind == _NLMSG_ERROR else 0
