"""pid → who it is: leader comm, executable, container id, systemd unit, service.

Read from /proc once per process and cached (bounded LRU). The cache entry of
a pid is dropped when it execs or exits, so a reused pid never inherits an old
name. The cgroup parsing is pure and tested on plain strings.

Every ring-buffer record asks for its process, so the finished
:class:`ProcessInfo` is memoised too, per pid and (tid, comm, uid, cgroup id): a
busy connection's records share one object, read without the lock.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from lumen_sniff.capture.containers import container_info
from lumen_sniff.capture.service import service_name
from lumen_sniff.model import ProcessInfo

__all__ = ["ProcCache", "container_id", "systemd_unit"]

# Container runtimes name the cgroup after the container id (64 hex digits):
# docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
# /docker/<id>, /kubepods/.../<id>.
_CONTAINER_RE = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?(?:/|$)")
_UNIT_RE = re.compile(r"^[\w@:.\\-]+\.(?:service|scope)$")


def container_id(cgroup_path: str) -> str | None:
    """The container id named by a cgroup path, if any.

    Args:
        cgroup_path: e.g. ``/system.slice/docker-<64 hex>.scope``.

    Returns:
        The 64-hex-digit id, or None.
    """
    matches = _CONTAINER_RE.findall(cgroup_path)
    return matches[-1] if matches else None


def systemd_unit(cgroup_path: str) -> str | None:
    """The systemd service (or scope) a cgroup path belongs to, if any.

    The innermost ``.service`` wins; a ``.scope`` counts only when no service
    encloses it and it is not a container's scope.

    Args:
        cgroup_path: e.g. ``/system.slice/nginx.service``.

    Returns:
        The unit name, or None.
    """
    parts = [p for p in cgroup_path.split("/") if p]
    services = [p for p in parts if p.endswith(".service") and _UNIT_RE.match(p)]
    if services:
        return services[-1]
    scopes = [p for p in parts if p.endswith(".scope") and _UNIT_RE.match(p)]
    if scopes and container_id(scopes[-1]) is None:
        return scopes[-1]
    return None


def _cgroup_v2_path(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


_MAX_INFOS_PER_PID = 256
"""Memoised ProcessInfos per pid (one per thread, mostly)."""

_Entry = tuple[str, str | None, str | None, str | None, str | None]
"""comm, exe, container id, unit, service."""


def _argv(raw: bytes) -> list[str]:
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


class ProcCache:
    """Bounded, thread-safe cache of :class:`ProcessInfo` static parts per pid."""

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        proc: Path = Path("/proc"),
        host_root: Path = Path("/"),
    ) -> None:
        self._max = max_entries
        self._proc = proc
        self._host_root = host_root
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        # pid → (tid, comm, uid, cgroup id) → the ProcessInfo built from its entry.
        # Written under the lock, read without it (dict reads are atomic); emptied
        # with the pid's entry.
        self._infos: dict[int, dict[tuple[int, str, int, int], ProcessInfo]] = {}

    def _read(self, pid: int, comm_hint: str) -> _Entry:
        base = self._proc / str(pid)
        try:
            comm = (base / "comm").read_text().rstrip("\n")
        except OSError:
            comm = comm_hint
        try:
            exe: str | None = os.readlink(base / "exe")
        except OSError:
            exe = None
        try:
            cgroup = _cgroup_v2_path((base / "cgroup").read_text())
        except OSError:
            cgroup = ""
        try:
            argv = _argv((base / "cmdline").read_bytes()[:4096])
        except OSError:
            argv = []
        cid, unit = container_id(cgroup), systemd_unit(cgroup)
        container = container_info(cid, root=self._host_root)
        service = service_name(
            unit=unit, cgroup_path=cgroup, container=container, argv=argv, exe=exe, comm=comm
        )
        return comm, exe, cid, unit, service

    def lookup(
        self, *, pid: int, tid: int = 0, comm: str = "", uid: int = 0, cgroup_id: int = 0
    ) -> ProcessInfo:
        """Process metadata for ``pid``, reading /proc on first sight.

        Args:
            pid: The tgid.
            tid: The thread that made the call.
            comm: The leader comm the kernel reported (preferred to /proc's, which
                may already belong to another program after an exec).
            uid: Real uid from the kernel.
            cgroup_id: cgroup id from the kernel.

        Returns:
            The ProcessInfo.
        """
        infos = self._infos.get(pid)
        if infos is not None:
            info = infos.get((tid, comm, uid, cgroup_id))
            if info is not None:
                return info
        with self._lock:
            entry = self._entries.get(pid)
            if entry is not None:
                self._entries.move_to_end(pid)
        if entry is None:
            entry = self._read(pid, comm)
            with self._lock:
                self._entries[pid] = entry
                while len(self._entries) > self._max:
                    self._infos.pop(self._entries.popitem(last=False)[0], None)
        cached_comm, exe, container, unit, service = entry
        info = ProcessInfo(
            pid=pid,
            tid=tid,
            comm=comm or cached_comm,
            uid=uid,
            cgroup_id=cgroup_id,
            exe=exe,
            container=container,
            unit=unit,
            service=service,
        )
        with self._lock:
            if self._entries.get(pid) is entry:  # not forgotten meanwhile
                infos = self._infos.setdefault(pid, {})
                if len(infos) >= _MAX_INFOS_PER_PID:
                    infos.clear()
                infos[(tid, comm, uid, cgroup_id)] = info
        return info

    def forget(self, pid: int) -> None:
        """Drop ``pid``'s entry (it exec'd or exited)."""
        with self._lock:
            self._entries.pop(pid, None)
            self._infos.pop(pid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
