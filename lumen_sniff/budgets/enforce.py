"""The block's kernel edge: a cgroup connect() guard, held by BPF links.

``bpf/guard.bpf.c`` is compiled in a child process (or read from the object
cache, :mod:`lumen_sniff.capture.bpf.runtime.cache`) and loaded with libbpf
as two ``CGROUP_SOCK_ADDR`` programs (connect4,
connect6) and attached to the root of the cgroup v2 hierarchy (found in
/proc/mounts, never assumed) through BPF **links** (``BPF_LINK_CREATE``), not
``BPF_PROG_ATTACH``: a legacy attachment outlives the process that made it,
while a link is released with the last file descriptor. So when the daemon
exits or is ``kill -9``-ed, the kernel detaches the guard and nothing stays
blocked (fail-open). With ``fail_closed`` the links are pinned under
``/sys/fs/bpf/lumen-sniff/`` and survive the daemon: blocks then hold through a
crash, and also until someone removes the pins (the next start does, or
``rm /sys/fs/bpf/lumen-sniff/*``).

User space only ever syncs sets: :meth:`ConnectGuard.set_targets` makes the
kernel's blocked tgids/cgroups/comms equal to what the service computed, and
:meth:`ConnectGuard.add_endpoint` adds an LLM (address, port).
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from lumen_sniff.capture.bpf.runtime.cache import DEFAULT_CACHE_DIR, CompileJob, CompileRequest
from lumen_sniff.capture.bpf.runtime.libbpf import obj_pin
from lumen_sniff.capture.bpf.runtime.loaded import CGROUP_SOCK_ADDR, BpfObject, ProgKind
from lumen_sniff.errors import CaptureError

__all__ = [
    "GUARD_SOURCE",
    "ConnectGuard",
    "Ep4",
    "Ep6",
    "GuardComm",
    "cgroup2_root",
    "guard_request",
]

log = logging.getLogger("lumen_sniff.enforce")

GUARD_SOURCE = Path(__file__).resolve().parents[2] / "bpf" / "guard.bpf.c"
_PIN_DIR = Path("/sys/fs/bpf/lumen-sniff")
_ATTACH = {"guard_connect4": 10, "guard_connect6": 11}  # BPF_CGROUP_INET{4,6}_CONNECT
_KINDS = {
    name: ProgKind(prog_type=CGROUP_SOCK_ADDR, expected_attach_type=attach)
    for name, attach in _ATTACH.items()
}


class Ep4(ctypes.Structure):
    """struct guard_ep4."""

    _fields_ = (("addr", ctypes.c_uint32), ("port", ctypes.c_uint32))


class Ep6(ctypes.Structure):
    """struct guard_ep6."""

    _fields_ = (("addr", ctypes.c_uint32 * 4), ("port", ctypes.c_uint32))


class GuardComm(ctypes.Structure):
    """struct guard_comm."""

    _fields_ = (("comm", ctypes.c_char * 16),)


def cgroup2_root(mounts: str | None = None) -> Path:
    """The cgroup v2 mount point, from /proc/mounts.

    Raises:
        CaptureError: no cgroup2 hierarchy is mounted.
    """
    text = mounts if mounts is not None else Path("/proc/mounts").read_text()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1].replace("\\040", " "))
    raise CaptureError("no cgroup2 hierarchy in /proc/mounts: blocking needs cgroup v2")


def _key4(addr: ipaddress.IPv4Address, port: int) -> Ep4:
    # bpf_sock_addr holds both in network order; ctypes writes host (little) order.
    return Ep4(int.from_bytes(addr.packed, "little"), socket.htons(port))


def _key6(addr: ipaddress.IPv6Address, port: int) -> Ep6:
    packed = addr.packed
    words = (ctypes.c_uint32 * 4)(
        *(int.from_bytes(packed[i : i + 4], "little") for i in range(0, 16, 4))
    )
    return Ep6(words, socket.htons(port))


def guard_request() -> CompileRequest:
    """What the guard compiles from (``lumen-sniff warm`` compiles it ahead of need)."""
    return CompileRequest(name="guard", text=GUARD_SOURCE.read_text(), cflags=())


class ConnectGuard:
    """The loaded guard: its maps, links and counters."""

    def __init__(
        self, *, fail_closed: bool = False, cache_dir: Path | None = DEFAULT_CACHE_DIR
    ) -> None:
        self.fail_closed = fail_closed
        self._cache_dir = cache_dir
        self.cached = False
        """The last start read the compiled guard from the cache (no compile)."""
        self._bpf: BpfObject | None = None
        self._cgroup_fd = -1
        self._tgids: set[int] = set()
        self._cgroups: set[int] = set()
        self._comms: set[str] = set()
        self.endpoints: set[tuple[str, int]] = set()
        """Known LLM endpoints as (address text, port)."""
        self.root: Path | None = None

    def start(self) -> None:
        """Compile (or read from the cache), load and link both programs to the cgroup v2 root.

        Raises:
            CaptureError: not root, no cgroup2, or the program did not compile or load.
        """
        if os.geteuid() != 0:
            raise CaptureError("blocking needs root (CAP_BPF, CAP_NET_ADMIN)")
        self.root = cgroup2_root()
        try:
            job = CompileJob(guard_request(), self._cache_dir)
            self._bpf = BpfObject(job.result(), _KINDS)
            self.cached = job.cached
            for name in _ATTACH:
                self._bpf.load_func(name)
        except (OSError, KeyError, ValueError, CaptureError) as exc:
            self.stop()
            raise CaptureError(f"the connect guard did not load: {exc}") from exc
        self._cgroup_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if self.fail_closed:
            _clear_pins()
        try:
            for name, attach_type in _ATTACH.items():
                link = self._bpf.link(name, self._cgroup_fd, attach_type)
                if self.fail_closed:
                    _pin(link, _PIN_DIR / name)
        except OSError as exc:
            self.stop()
            raise CaptureError(f"the connect guard could not be linked: {exc}") from exc
        log.info(
            "connect guard linked to %s (%s)",
            self.root,
            "fail-closed: pinned" if self.fail_closed else "fail-open",
        )

    @property
    def blocked_tgids(self) -> frozenset[int]:
        """Processes currently refused."""
        return frozenset(self._tgids)

    def add_endpoint(self, addr: str, port: int) -> bool:
        """Mark (addr, port) as an LLM endpoint; True when it was new."""
        if (addr, port) in self.endpoints or self._bpf is None:
            return False
        ip = ipaddress.ip_address(addr)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if isinstance(ip, ipaddress.IPv4Address):
            self._bpf[b"guard_ep4"][_key4(ip, port)] = ctypes.c_uint8(1)
        else:
            self._bpf[b"guard_ep6"][_key6(ip, port)] = ctypes.c_uint8(1)
        self.endpoints.add((addr, port))
        return True

    def set_targets(self, *, tgids: set[int], cgroups: set[int], comms: set[str]) -> None:
        """Make the blocked sets exactly these."""
        if self._bpf is None:
            return
        for name, have, want, key in (
            (b"guard_tgids", self._tgids, tgids, ctypes.c_uint32),
            (b"guard_cgroups", self._cgroups, cgroups, ctypes.c_uint64),
        ):
            table = self._bpf[name]
            for value in want - have:
                table[key(value)] = ctypes.c_uint8(1)
            for value in have - want:
                table.pop(key(value), None)
        table = self._bpf[b"guard_comms"]
        for comm in comms - self._comms:
            table[GuardComm(comm.encode()[:15])] = ctypes.c_uint8(1)
        for comm in self._comms - comms:
            table.pop(GuardComm(comm.encode()[:15]), None)
        self._tgids, self._cgroups, self._comms = set(tgids), set(cgroups), set(comms)

    def refused(self) -> int:
        """connect() calls refused since start."""
        if self._bpf is None:
            return 0
        return int(self._bpf[b"guard_refused"][ctypes.c_int(0)].value)

    def status(self) -> dict[str, Any]:
        """For /api/budgets."""
        return {
            "loaded": self._bpf is not None,
            "cgroup_root": str(self.root) if self.root else None,
            "fail_closed": self.fail_closed,
            "endpoints": sorted(f"{a}:{p}" for a, p in self.endpoints),
            "blocked_tgids": sorted(self._tgids),
            "blocked_comms": sorted(self._comms),
            "blocked_cgroups": sorted(self._cgroups),
            "refused_connects": self.refused(),
        }

    def stop(self) -> None:
        """Close the links (fail-open: the kernel detaches the guard)."""
        if self._cgroup_fd >= 0:
            os.close(self._cgroup_fd)
            self._cgroup_fd = -1
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


def _pin(fd: int, path: Path) -> None:
    if not Path("/sys/fs/bpf").is_mount():
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    obj_pin(fd, str(path))


def _clear_pins() -> None:
    # A previous fail-closed daemon's links: removing the pins detaches them.
    if _PIN_DIR.is_dir():
        for pin in _PIN_DIR.iterdir():
            pin.unlink(missing_ok=True)
