"""Turns active blocks and pauses into kernel state: the connect guard, socket
destruction, and stop/continue through the watchdog.

Strategy: every active enforcement (a budget's, or a manual kill switch) is kept
by key; after any change :meth:`Enforcer.sync` recomputes the union of targets
and makes the kernel match it. Blocks: the guard's tgid, cgroup and comm sets,
then the established connections of every blocked process to a known LLM
endpoint are destroyed, at once for a process with no LLM call in flight, and
once its calls end (or after a ceiling) otherwise (:mod:`.inflight`).
Pauses: processes that should be stopped and are not get ``stop``, those that
no longer should get ``cont``. Targets are:

* the processes that made the scope's calls this period (every scope; for
  api_key_id, tenant, model and provider this is the only handle there is);
* for a service, also its name (a new process of that name is refused too);
* for a unit or container, also the cgroup of those processes.

Endpoints are learned from events (:mod:`.endpoints`); the allowlist is never
added. This daemon and its watchdog are never targets.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from lumen_sniff.budgets.endpoints import RELEARN_S, destroy, llm_peers, parse_host
from lumen_sniff.budgets.enforce import ConnectGuard, cgroup2_root
from lumen_sniff.budgets.inflight import Deferral
from lumen_sniff.budgets.liveness import Births
from lumen_sniff.budgets.model import Action, Enforcement
from lumen_sniff.budgets.settings import BudgetSettings
from lumen_sniff.capture.bpf.runtime.cache import DEFAULT_CACHE_DIR
from lumen_sniff.errors import CaptureError
from lumen_sniff.model import UsageEvent

__all__ = ["Enforcer"]

log = logging.getLogger("lumen_sniff.enforce")

_SEEN_MAX = 4096
_IDLE = "not loaded: no block budget or kill switch yet"


class Enforcer:
    """Kernel-side state of blocks and pauses (see the module docstring)."""

    def __init__(
        self, settings: BudgetSettings, *, cache_dir: Path | None = DEFAULT_CACHE_DIR
    ) -> None:
        # cache_dir: ``[capture] bpf_cache_dir`` (None: compile the guard each load).
        self.guard = ConnectGuard(fail_closed=settings.fail_closed, cache_dir=cache_dir)
        self.error: str | None = _IDLE
        """Why blocks are not applied (None once the guard is loaded)."""
        self._saved: set[tuple[str, int]] = set()
        """Endpoints known while the guard is not loaded (added when it is)."""
        nets, names = [], set()
        for entry in settings.allowlist:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower())
        self._allow_nets = nets
        self._allow_hosts = names
        self._learned: dict[tuple[int, str], float] = {}
        self._seen: dict[str, set[int]] = {}
        self._active: dict[str, tuple[Enforcement, bool]] = {}
        self._stopped: set[int] = set()
        self._watchdog: subprocess.Popen[str] | None = None
        self._self = {os.getpid()}
        self._cgroup_of: dict[int, int | None] = {}
        self._scope_cgroups: dict[str, set[int]] = {}
        """Cgroups an enforcement by cgroup holds; they stay blocked after its callers exit."""
        self.busy: Callable[[], Mapping[int, int]] = dict
        """Open LLM exchanges per pid (the daemon plugs in the pipeline's count)."""
        self._deferred = Deferral(settings.inflight_grace_s)
        self._births = Births()
        """Targets are pids: an exited one (or its reuse) must drop out of every set."""

    def load(self) -> None:
        """Load the guard, once, when a block may be needed; on failure record why.

        Until then nothing is attached to the kernel's connect path: a host with
        only ``alert`` budgets pays nothing for enforcement.
        """
        if self.error != _IDLE:
            return
        try:
            self.guard.start()
            self.error = None
        except CaptureError as exc:
            self.error = str(exc)
            log.warning("blocking unavailable: %s", exc)
            return
        self.restore_endpoints(sorted(self._saved))

    # -------------------------------------------------------------- learn

    def learn(self, events: Iterable[UsageEvent]) -> list[tuple[int, str]]:
        """Note who called; return the (pid, host) pairs whose endpoints to look up.

        The lookup itself (:meth:`discover`: /proc and DNS, which can block) runs
        in a worker thread; :meth:`add_endpoints` takes its answer on the loop.
        """
        now = time.monotonic()
        todo: list[tuple[int, str]] = []
        for e in events:
            if e.pid is None:
                continue
            if self._active:  # births matter only to targets; /proc per event otherwise
                self._births.note(e.pid, fresh=True)  # now, while the caller surely runs
            if e.process:
                pids = self._seen.setdefault(e.process, set())
                if len(pids) < _SEEN_MAX:
                    pids.add(e.pid)
            if not e.host or self.error not in (None, _IDLE) or self._allowed_name(e.host):
                continue
            key = (e.pid, e.host)
            if now - self._learned.get(key, -RELEARN_S) < RELEARN_S:
                continue
            self._learned[key] = now
            todo.append(key)
        return todo

    def discover(self, todo: Iterable[tuple[int, str]]) -> set[tuple[str, int]]:
        """The LLM endpoints of those (pid, host) pairs (blocking I/O: call off the loop)."""
        found: set[tuple[str, int]] = set()
        for pid, host in todo:
            found |= {p for p in llm_peers(pid, host) if not self._allowed_addr(p[0])}
        return found

    def add_endpoints(self, endpoints: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Add endpoints to the guard; close blocked processes' connections to new ones."""
        if self.error == _IDLE:
            fresh = [ep for ep in endpoints if ep not in self._saved]
            self._saved |= set(fresh)
            return fresh
        fresh = [ep for ep in endpoints if self.guard.add_endpoint(*ep)]
        if fresh and self.guard.blocked_tgids:
            self._destroy()
        return fresh

    def restore_endpoints(self, endpoints: Iterable[tuple[str, int]]) -> None:
        """Endpoints learned by an earlier run (the allowlist still wins)."""
        if self.error == _IDLE:
            self._saved |= set(endpoints)
        elif self.error is None:
            for addr, port in endpoints:
                if not self._allowed_addr(addr):
                    self.guard.add_endpoint(addr, port)

    def _allowed_name(self, host: str) -> bool:
        return parse_host(host)[0].lower() in self._allow_hosts

    def _allowed_addr(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip in net for net in self._allow_nets)

    # ------------------------------------------------------------- enforce

    def apply(self, e: Enforcement, *, by_cgroup: bool = False) -> None:
        """Apply (``e.active``) or lift one enforcement, then sync the kernel."""
        if e.active:
            self._active[e.budget] = (e, by_cgroup)
        else:
            self._active.pop(e.budget, None)
            self._scope_cgroups.pop(e.budget, None)
        self.sync()

    def refresh(self, key: str, pids: frozenset[int]) -> None:
        """New processes made an enforced scope's calls: add them."""
        current = self._active.get(key)
        if current is not None and not pids <= current[0].pids:
            e, by_cgroup = current
            self._active[key] = (_with_pids(e, e.pids | pids), by_cgroup)
            self.sync()

    def sync(self) -> None:
        """Make the guard's sets and the stopped processes match the active enforcements."""
        tgids: set[int] = set()
        comms: set[str] = set()
        cgroups: set[int] = set()
        stop: set[int] = set()
        named = _pids_named({c for e, _ in self._active.values() for c in e.comms})
        for key, (e, by_cgroup) in self._active.items():
            if by_cgroup:  # before exited callers drop out: their cgroup stays blocked
                held = self._scope_cgroups.setdefault(key, set())
                held |= {cg for pid in e.pids if (cg := self._cgroup(pid)) is not None}
        self._drop_exited()
        for key, (e, by_cgroup) in self._active.items():
            pids = set(e.pids)
            for comm in e.comms:
                pids |= self._seen.get(comm, set()) | named.get(comm[:15], set())
            pids = self._births.live(pids) - self._self
            if e.action is Action.PAUSE:
                stop |= pids
                continue
            tgids |= pids
            comms |= set(e.comms)
            if by_cgroup:
                held = self._scope_cgroups.setdefault(key, set())
                held |= {cg for pid in pids if (cg := self._cgroup(pid)) is not None}
                cgroups |= held
        if self.error is None:
            newly = tgids - self.guard.blocked_tgids
            self.guard.set_targets(tgids=tgids, cgroups=cgroups, comms=comms)
            if newly:
                self._destroy()
        self._pause(stop)

    def _drop_exited(self) -> None:
        # Exited (or reused) pids leave the enforcements and the callers seen, for good.
        for key, (e, by_cgroup) in list(self._active.items()):
            live = frozenset(self._births.live(e.pids))
            if live != e.pids:
                self._active[key] = (_with_pids(e, live), by_cgroup)
        for pids in self._seen.values():
            pids &= self._births.live(pids)

    def _destroy(self) -> None:
        blocked = self.guard.blocked_tgids
        due = self._deferred.due(blocked, self.busy(), time.monotonic())
        self._close(due)
        if len(due) < len(blocked):
            log.info("calls in flight: connections of %d blocked processes close when they end",
                     len(blocked) - len(due))

    def poll(self) -> None:
        """Destroy the connections of blocked processes whose calls in flight have ended."""
        blocked = self.guard.blocked_tgids | self._stopped
        if blocked and self._births.live(blocked) != blocked:
            self.sync()  # a blocked or paused process exited: its pid must not stay a target
        if self.error is None and self._deferred.waiting:
            due = self._deferred.poll(self.guard.blocked_tgids, self.busy(), time.monotonic())
            self._close(due)

    def _close(self, pids: set[int]) -> None:
        count = destroy(pids, self.guard.endpoints) if pids else 0
        if count:
            log.info("closed %d open LLM connections of blocked processes", count)

    def _cgroup(self, pid: int) -> int | None:
        if pid not in self._cgroup_of:
            try:
                text = Path(f"/proc/{pid}/cgroup").read_text()
                path = next(ln[3:] for ln in text.splitlines() if ln.startswith("0::"))
                ino = os.stat(cgroup2_root() / path.lstrip("/")).st_ino
                # The root holds everyone: never block by it.
                self._cgroup_of[pid] = None if path.strip() == "/" else ino
            except (OSError, StopIteration, CaptureError):
                self._cgroup_of[pid] = None
        return self._cgroup_of[pid]

    # --------------------------------------------------------------- pause

    def _pause(self, want: set[int]) -> None:
        if want == self._stopped:
            return
        if self._watchdog is None or self._watchdog.poll() is not None:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "lumen_sniff.budgets.watchdog"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        stdin = self._watchdog.stdin
        assert stdin is not None
        self._self.add(self._watchdog.pid)
        for pid in sorted(want - self._stopped):
            stdin.write(f"stop {pid}\n")
        for pid in sorted(self._stopped - want):
            stdin.write(f"cont {pid}\n")
        stdin.flush()
        self._stopped = set(want)

    # -------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """For /api/budgets."""
        out: dict[str, Any] = {
            "error": self.error,
            "paused_pids": sorted(self._stopped),
            "inflight_pids": sorted(self._deferred.waiting),
        }
        out.update(self.guard.status())
        return out

    def stop(self) -> None:
        """Fail open: continue paused processes and release the guard's links."""
        if self._watchdog is not None:
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()  # EOF: the watchdog continues everyone and exits
            try:
                self._watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
        self.guard.stop()


def _pids_named(names: set[str]) -> dict[str, set[int]]:
    """Running processes by name (kernel comm, 15 characters), for the names asked.

    A service blocked by name includes processes that have not made a call this
    daemon saw (started before a restart, or holding a connection opened then).
    """
    wanted = {n[:15] for n in names}
    out: dict[str, set[int]] = {}
    if not wanted:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().rstrip("\n")
        except OSError:
            continue
        if comm in wanted:
            out.setdefault(comm, set()).add(int(entry.name))
    return out


def _with_pids(e: Enforcement, pids: frozenset[int]) -> Enforcement:
    return Enforcement(
        budget=e.budget,
        action=e.action,
        active=e.active,
        reason=e.reason,
        at_ns=e.at_ns,
        pids=pids,
        comms=e.comms,
    )
