"""Which files to hook: TLS libraries and executables that carry their own OpenSSL.

A uprobe is set on a file (an inode), not on a process: once ``libssl.so.3`` is
hooked, every process that maps it, now or later, is covered. So discovery
keys everything by the (device, inode) that ``/proc/PID/maps`` reports, and a
file is examined and hooked once, however many processes (or containers, seen
through ``/proc/PID/root``) map it.

Which files are worth a look and which are hooked is the TLS library table's
(:mod:`lumen_sniff.capture.bpf.libraries`): a process's executable and every
mapped file a row's ``file_names`` matches are read (:func:`elf_facts`, both
symbol tables), and the first row whose ``judge`` accepts the file hooks it.

:class:`Discovery` is not thread-safe; the loader calls it from one thread.

What a scan costs matters: the loader rescans a process on every exec and on
every executable mapping, and a busy host execs tens of programs a second.

- A verdict is kept per file identity: (device, inode) plus size and mtime, so a
  file is read once however often it is run, and read again only when it
  changed. Reading one is cheap too (:mod:`~lumen_sniff.capture.bpf.elf` maps
  the file and looks names up in its string tables, no copy).
- A rescan of a known program reads /proc/PID/maps and stats only the
  executable mappings of the executable and of files a row's names match.
- What is kept does not grow with the host's history: a file without TLS code
  stays in :attr:`Discovery.files` while a process maps it, then only its
  identity is remembered, in a bounded table; pids are indexed, so an exit
  costs the files that process mapped, not every file ever judged.
"""

from __future__ import annotations

import glob
import heapq
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from lumen_sniff.capture.bpf.elf import ElfFacts, elf_facts
from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES
from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS, TlsLibrary
from lumen_sniff.capture.bpf.unsupported import unsupported_reason

__all__ = ["Discovery", "Mapping", "Rescans", "Target", "parse_maps"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Mapping:
    """One file-backed line of /proc/PID/maps."""

    dev: str
    """Device as maps prints it ("fd:01")."""
    inode: int
    """Inode number."""
    path: str
    """Path inside the process's mount namespace."""
    executable: bool
    """The mapping is executable."""


def parse_maps(text: str) -> list[Mapping]:
    """Parse /proc/PID/maps, keeping file-backed mappings.

    Args:
        text: The file's contents.

    Returns:
        One Mapping per line that names a file (inode != 0).
    """
    return _parse_lines(text.splitlines())


def _code_lines(text: str) -> list[str]:
    # The executable mappings only, found without splitting every line: a
    # rescan runs on every exec, and most of a process's lines are data.
    # "start-end perms ...": the x of perms is the third character after the space.
    out = []
    for line in text.splitlines():
        space = line.find(" ")
        if line[space + 3 : space + 4] == "x":
            out.append(line)
    return out


def _parse_lines(lines: list[str]) -> list[Mapping]:
    out: list[Mapping] = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or parts[4] == "0" or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path.endswith(" (deleted)"):
            continue  # no longer reachable by name; cannot be attached
        out.append(
            Mapping(dev=parts[3], inode=int(parts[4]), path=path, executable="x" in parts[1])
        )
    return out


@dataclass(kw_only=True, slots=True)
class Target:
    """A file to hook (or that was examined and refused)."""

    path: str
    """Path the probes are attached through (host path, or /proc/PID/root/...)."""
    key: tuple[str, int]
    """(device, inode)."""
    kind: str
    """"library" or "executable"."""
    symbols: tuple[str, ...]
    """TLS functions it defines (of any row's)."""
    library: TlsLibrary | None = None
    """The TLS library row that hooks it; None when skipped."""
    facts: ElfFacts | None = None
    """What its ELF file says (None when unreadable)."""
    pids: set[int] = field(default_factory=set)
    """Processes seen mapping it."""
    skipped: str = ""
    """Why it is not hooked (a key of ``tlslib.SKIP_REASONS``), or empty."""
    identity: tuple[int, int] = (0, 0)
    """(size, mtime in ns) when judged: a file changed in place is judged again."""


_NOT_TLS = (NO_TLS_SYMBOLS, "unreadable")
"""Verdicts that say nothing worth keeping once no process maps the file."""
_REMEMBERED = 8192
"""Identities of files without TLS code remembered after their last process exited."""


def _dev_matches(dev: str, st_dev: int) -> bool:
    major, _, minor = dev.partition(":")
    try:
        return os.major(st_dev) == int(major, 16) and os.minor(st_dev) == int(minor, 16)
    except ValueError:
        return False


def _judge_file(
    path: str, key: tuple[str, int], kind: str, libraries: tuple[TlsLibrary, ...]
) -> Target:
    wanted = tuple(dict.fromkeys(s for library in libraries for s in library.symbols))
    facts = elf_facts(path, wanted)
    if facts is None:
        return Target(path=path, key=key, kind=kind, symbols=(), skipped="unreadable")
    reasons = []
    for library in libraries:
        reason = library.judge(library, facts)
        if not reason:
            return Target(
                path=path, key=key, kind=kind, symbols=facts.symbols, library=library, facts=facts
            )
        reasons.append(reason)
    # The most telling reason: one that is not merely "no symbols of mine".
    skipped = next((r for r in reasons if r != NO_TLS_SYMBOLS), NO_TLS_SYMBOLS)
    if skipped == NO_TLS_SYMBOLS and kind == "executable" and not facts.is_go:
        # A TLS stack we recognise but cannot hook is reported, not left silent.
        skipped = unsupported_reason(path) or NO_TLS_SYMBOLS
    symbols = facts.symbols
    return Target(path=path, key=key, kind=kind, symbols=symbols, facts=facts, skipped=skipped)


class Discovery:
    """Finds hookable files through /proc and remembers every file it has judged."""

    def __init__(
        self,
        *,
        proc: Path = Path("/proc"),
        exclude_pids: tuple[int, ...] = (),
        libraries: tuple[TlsLibrary, ...] = TLS_LIBRARIES,
    ) -> None:
        self._proc = proc
        self._libraries = libraries
        self._names = tuple(library.file_names for library in libraries)
        self._exclude = set(exclude_pids)
        self.files: dict[tuple[str, int], Target] = {}
        """Files judged, by (device, inode) as stat() gives them: every hooked or
        refused file, and files without TLS code while a process maps them."""
        self._by_pid: dict[int, set[tuple[str, int]]] = {}
        self._not_tls: OrderedDict[tuple[str, int], tuple[int, int]] = OrderedDict()
        """Identities of files without TLS code no process maps any more (bounded, LRU)."""

    def _resolve(self, pid: int, mapping: Mapping) -> tuple[str, os.stat_result] | None:
        # Prefer the host path when it is the very same file; containers (and
        # processes in another mount namespace) go through /proc/PID/root.
        try:
            st = os.stat(mapping.path)
            if st.st_ino == mapping.inode and _dev_matches(mapping.dev, st.st_dev):
                return mapping.path, st
        except OSError:
            pass
        path = f"{self._proc}/{pid}/root{mapping.path}"
        try:
            return path, os.stat(path)
        except OSError:
            return None

    def _judge(self, pid: int, mapping: Mapping, kind: str) -> Target | None:
        # maps' (dev, inode) is not the identity: what stat() says of the path we
        # would attach through is, so a library seen both in maps and by the
        # system scan (or on overlayfs, where devices differ) is still hooked
        # once. Hooking a file twice would copy every byte twice.
        resolved = self._resolve(pid, mapping)
        if resolved is None:
            return None
        path, st = resolved
        key = (f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino)
        identity = (st.st_size, st.st_mtime_ns)
        known = self.files.get(key)
        if known is not None and (known.identity == identity or not known.skipped):
            # (A hooked file changed in place keeps its probes: they are on the inode.)
            self._note_pid(known, pid)
            return None
        if self._not_tls.get(key) == identity:
            self._not_tls.move_to_end(key)
            target = Target(path=path, key=key, kind=kind, symbols=(), skipped=NO_TLS_SYMBOLS)
        else:
            target = _judge_file(path, key, kind, self._libraries)
        target.identity = identity
        self.files[key] = target
        self._note_pid(target, pid)
        return None if target.skipped else target

    def _note_pid(self, target: Target, pid: int) -> None:
        if pid:
            target.pids.add(pid)
            self._by_pid.setdefault(pid, set()).add(target.key)

    def scan_pid(self, pid: int) -> list[Target]:
        """Look at one process's executable and mapped TLS libraries.

        Args:
            pid: Process to examine.

        Returns:
            Files found hookable for the first time (to be attached).
        """
        if pid in self._exclude:
            return []
        base = self._proc / str(pid)
        try:
            text = (base / "maps").read_text()
            exe = os.readlink(base / "exe")
        except OSError:
            return []  # gone, or a kernel thread
        new: list[Target] = []
        seen: set[tuple[str, int]] = set()
        # Only code can be hooked: a file's read-only and data mappings are skipped.
        for mapping in _parse_lines(_code_lines(text)):
            alias = (mapping.dev, mapping.inode)
            if alias in seen:
                continue
            if mapping.path == exe:
                kind = "executable"
            elif any(names.search(mapping.path) for names in self._names):
                kind = "library"
            else:
                continue
            seen.add(alias)
            target = self._judge(pid, mapping, kind)
            if target is not None:
                new.append(target)
        return new

    def scan_all(self, *, system: bool = True) -> list[Target]:
        """Scan every process, plus (with ``system``) the system TLS libraries.

        Returns:
            Files found hookable for the first time.
        """
        new = self.scan_system_libraries() if system else []
        for entry in os.listdir(self._proc):
            if entry.isdigit():
                new.extend(self.scan_pid(int(entry)))
        return new

    def scan_system_libraries(self) -> list[Target]:
        """Judge every row's system libraries and TLS-carrying executables.

        Returns:
            Files found hookable for the first time.
        """
        new: list[Target] = []
        paths = [
            (path, kind)
            for library in self._libraries
            for kind, globs in (
                ("library", library.system_libraries),
                ("executable", library.system_executables),
            )
            for pattern in globs
            for path in sorted(glob.glob(pattern))
        ]
        for path, kind in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
            mapping = Mapping(dev=dev, inode=st.st_ino, path=path, executable=True)
            target = self._judge(0, mapping, kind)
            if target is not None:
                new.append(target)
        return new

    def forget_pid(self, pid: int) -> None:
        """The process exited: stop listing it under the files it mapped.

        A file without TLS code that no process maps any more leaves
        :attr:`files`; its identity is remembered (bounded), so the next run of
        the same program is not read again.
        """
        for key in self._by_pid.pop(pid, ()):
            target = self.files.get(key)
            if target is None:
                continue
            target.pids.discard(pid)
            if not target.pids and target.skipped in _NOT_TLS and not target.symbols:
                del self.files[key]
                self._not_tls[key] = target.identity
                self._not_tls.move_to_end(key)
                if len(self._not_tls) > _REMEMBERED:
                    self._not_tls.popitem(last=False)


class Rescans:
    """Thread-safe schedule of pids to rescan (exec, dlopen) or forget (exit).

    Each event asks for a rescan at a few delays, because the tracepoint fires
    before the mapping exists. A starting process maps its libraries in a burst
    (one executable mapping each, a millisecond apart), and one rescan after the
    burst sees them all: a request due at most ``slack`` (half its delay plus
    5 ms) after a pending one for the same pid moves that one later instead of
    adding another, and a pending one due soon after it answers it outright. A
    rescan is never put off by more than twice its slack, so a process that maps
    files without pause is still rescanned.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, int, bool]] = []
        """Heap of (due, sequence, pid, forget); entries no longer pending are skipped."""
        self._pending: dict[tuple[int, bool], dict[int, tuple[float, float]]] = {}
        """(pid, forget) -> sequence -> (due, first due asked for)."""
        self._seq = 0

    def add(self, pid: int, *, delays_s: tuple[float, ...], forget: bool = False) -> None:
        """Schedule ``pid`` for a rescan (or, with ``forget``, removal) after each delay."""
        now = time.monotonic()
        with self._cond:
            pending = self._pending.setdefault((pid, forget), {})
            for delay in delays_s:
                due = now + delay
                slack = delay / 2 + 0.005
                if any(due <= at <= due + slack for at, _first in pending.values()):
                    continue  # a rescan soon after this one answers it
                later = next(
                    (
                        (seq, first)
                        for seq, (at, first) in pending.items()
                        if due - slack <= at < due and due <= first + 2 * slack
                    ),
                    None,
                )
                first = due
                if later is not None:
                    del pending[later[0]]  # moved: its heap entry is skipped when popped
                    first = later[1]
                self._seq += 1
                pending[self._seq] = (due, first)
                heapq.heappush(self._due, (due, self._seq, pid, forget))
            self._cond.notify()

    def next_due(self, *, timeout_s: float) -> tuple[int, bool] | None:
        """Wait up to ``timeout_s`` for the next due pid; returns (pid, forget) or None."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][1] not in self._pending.get(
                    (self._due[0][2], self._due[0][3]), {}
                ):
                    heapq.heappop(self._due)  # moved later or already done
                if self._due and self._due[0][0] <= now:
                    _, _seq, pid, forget = heapq.heappop(self._due)
                    pending = self._pending[(pid, forget)]
                    # One rescan serves every request for this pid that is due now.
                    for seq in [s for s, (at, _f) in pending.items() if at <= now]:
                        del pending[seq]
                    if not pending:
                        del self._pending[(pid, forget)]
                    return pid, forget
                wait = deadline - now
                if self._due:
                    wait = min(wait, self._due[0][0] - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)
