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
"""

from __future__ import annotations

import glob
import heapq
import os
import threading
import time
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
    out: list[Mapping] = []
    for line in text.splitlines():
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
        self._exclude = set(exclude_pids)
        self.files: dict[tuple[str, int], Target] = {}
        """Every file judged, hooked or not, by (device, inode) as stat() gives them."""
        self._aliases: dict[tuple[str, int], tuple[str, int]] = {}

    def _attach_path(self, pid: int, mapping: Mapping) -> str:
        # Prefer the host path when it is the very same file; containers (and
        # processes in another mount namespace) go through /proc/PID/root.
        try:
            st = os.stat(mapping.path)
            if st.st_ino == mapping.inode and _dev_matches(mapping.dev, st.st_dev):
                return mapping.path
        except OSError:
            pass
        return f"{self._proc}/{pid}/root{mapping.path}"

    def _judge(self, pid: int, mapping: Mapping, kind: str) -> Target | None:
        # maps' (dev, inode) is only a shortcut: the identity is what stat() says
        # of the path we would attach through, so a library seen both in maps
        # and by the system scan (or on overlayfs, where devices differ) is
        # still hooked once. Hooking a file twice would copy every byte twice.
        alias = (mapping.dev, mapping.inode)
        key = self._aliases.get(alias)
        if key is None:
            path = self._attach_path(pid, mapping)
            try:
                st = os.stat(path)
            except OSError:
                return None
            key = (f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino)
            self._aliases[alias] = key
        known = self.files.get(key)
        if known is not None:
            if pid:
                known.pids.add(pid)
            return None
        target = _judge_file(self._attach_path(pid, mapping), key, kind, self._libraries)
        if pid:
            target.pids.add(pid)
        self.files[key] = target
        return None if target.skipped else target

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
            maps = parse_maps((base / "maps").read_text())
            exe = os.readlink(base / "exe")
        except OSError:
            return []  # gone, or a kernel thread
        new: list[Target] = []
        seen: set[tuple[str, int]] = set()
        for mapping in maps:
            alias = (mapping.dev, mapping.inode)
            if alias in seen:
                continue
            if mapping.path == exe:
                kind = "executable"
            elif any(lib.file_names.search(mapping.path) for lib in self._libraries):
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
        """The process exited: stop listing it under the files it mapped."""
        for target in self.files.values():
            target.pids.discard(pid)


class Rescans:
    """Thread-safe schedule of pids to rescan (exec, dlopen) or forget (exit).

    Several rescans of one pid due at once collapse into one; each event asks for
    a rescan at a few delays, because the tracepoint fires before the mapping exists.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, bool]] = []

    def add(self, pid: int, *, delays_s: tuple[float, ...], forget: bool = False) -> None:
        """Schedule ``pid`` for a rescan (or, with ``forget``, removal) after each delay."""
        now = time.monotonic()
        with self._cond:
            for delay in delays_s:
                heapq.heappush(self._due, (now + delay, pid, forget))
            self._cond.notify()

    def next_due(self, *, timeout_s: float) -> tuple[int, bool] | None:
        """Wait up to ``timeout_s`` for the next due pid; returns (pid, forget) or None."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                if self._due and self._due[0][0] <= now:
                    _, pid, forget = heapq.heappop(self._due)
                    # Drop duplicates that are also due now.
                    while (
                        self._due and self._due[0][0] <= now and self._due[0][1:] == (pid, forget)
                    ):
                        heapq.heappop(self._due)
                    return pid, forget
                wait = deadline - now
                if self._due:
                    wait = min(wait, self._due[0][0] - now)
                if wait <= 0:
                    return None
                self._cond.wait(wait)
