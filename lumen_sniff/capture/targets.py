"""Which files to hook: TLS libraries and executables that carry their own OpenSSL.

A uprobe is set on a file (an inode), not on a process: once ``libssl.so.3`` is
hooked, every process that maps it, now or later, is covered. So discovery
keys everything by the (device, inode) that ``/proc/PID/maps`` reports, and a
file is examined and hooked once, however many processes (or containers, seen
through ``/proc/PID/root``) map it.

A file is a target when it exports (defines, not imports) ``SSL_write`` or
``SSL_write_ex`` and ``SSL_read``/``SSL_read_ex``: ``libssl.so*`` (also the
``libssl-<hash>.so`` that Python wheels bundle), and executables such as
NodeSource's ``node`` that link OpenSSL statically. Go executables are skipped:
uretprobes corrupt goroutine stacks.

:class:`Discovery` is not thread-safe; the loader calls it from one thread.
"""

from __future__ import annotations

import glob
import heapq
import mmap
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lumen_sniff.capture.boringssl import Located
from lumen_sniff.capture.statictls import judge_static_tls

__all__ = [
    "SSL_SYMBOLS",
    "SYSTEM_EXECUTABLES",
    "SYSTEM_LIB_GLOBS",
    "Discovery",
    "ElfFacts",
    "Mapping",
    "Rescans",
    "Target",
    "elf_facts",
    "parse_maps",
]

SSL_SYMBOLS = ("SSL_write", "SSL_write_ex", "SSL_read", "SSL_read_ex", "SSL_free")
"""Functions the probes hook, when the file defines them."""

SYSTEM_LIB_GLOBS = (
    "/usr/lib/*-linux-gnu/libssl.so.*",
    "/lib/*-linux-gnu/libssl.so.*",
    "/usr/lib64/libssl.so.*",
    "/lib64/libssl.so.*",
    "/usr/lib/libssl.so.*",
    "/usr/local/lib/libssl.so.*",
    "/usr/local/lib64/libssl.so.*",
)
"""System TLS libraries hooked at start even when no process maps them yet, so a
short-lived client (curl) started later is covered from its first byte."""

SYSTEM_EXECUTABLES = ("/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs")
"""Executables that commonly carry their own OpenSSL, judged at start for the same
reason (the exec tracepoint also catches them, but a fast client could race it)."""

# Names worth an ELF look when mapped: OpenSSL's libssl (also wheel-bundled
# libssl-1a2b3c4d.so.3) and libraries that embed it (Debian's libnode).
_CANDIDATE_RE = re.compile(r"(?:^|/)(?:libssl(?:-[0-9a-f]+)?\.so[.0-9]*|libnode\.so[.0-9]*)$")
_GO_SECTIONS = (b".go.buildinfo", b".note.go.buildid", b".gopclntab")


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


@dataclass(frozen=True, kw_only=True, slots=True)
class ElfFacts:
    """What discovery needs to know of an ELF file."""

    symbols: tuple[str, ...]
    """Which of :data:`SSL_SYMBOLS` it defines (exports)."""
    is_go: bool
    """Built by the Go toolchain."""


def elf_facts(path: str) -> ElfFacts | None:
    """Read the dynamic symbol table and section names of an ELF64 little-endian file.

    Args:
        path: File to read.

    Returns:
        The facts, or None when the file is not a readable ELF64 LE file.
    """
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as m:
            return _elf_facts(m)
    except (OSError, ValueError, struct.error):
        return None


def _elf_facts(m: mmap.mmap) -> ElfFacts | None:
    if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
        return None
    shoff = struct.unpack_from("<Q", m, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", m, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize) for i in range(shnum)]
    if not sections:
        return None
    str_off = sections[shstrndx][4]

    def sec_name(sec: tuple[int, ...]) -> bytes:
        start = str_off + sec[0]
        return bytes(m[start : m.find(b"\0", start)])

    names = [sec_name(s) for s in sections]
    is_go = any(n in _GO_SECTIONS for n in names)
    dynsym = next((s for s in sections if s[1] == 11), None)  # SHT_DYNSYM
    if dynsym is None:
        return ElfFacts(symbols=(), is_go=is_go)
    strtab = sections[dynsym[6]]  # sh_link
    strings = m[strtab[4] : strtab[4] + strtab[5]]
    # Find each wanted name in the string table first, then compare only the
    # st_name integers: node's 75k symbols stay a cheap scan.
    wanted: dict[int, str] = {}
    for name in SSL_SYMBOLS:
        needle = b"\0" + name.encode() + b"\0"
        pos = strings.find(needle)
        while pos != -1:
            wanted[pos + 1] = name
            pos = strings.find(needle, pos + 1)
    found: set[str] = set()
    start, size = dynsym[4], dynsym[5]
    for st_name, st_info, _other, st_shndx, _value, _size in struct.iter_unpack(
        "<IBBHQQ", m[start : start + size]
    ):
        # Defined (shndx != UNDEF) functions (STT_FUNC = 2) only: curl imports SSL_write.
        if st_name in wanted and st_shndx != 0 and st_info & 0xF == 2:
            found.add(wanted[st_name])
    return ElfFacts(symbols=tuple(s for s in SSL_SYMBOLS if s in found), is_go=is_go)


def _hookable(symbols: tuple[str, ...]) -> bool:
    writes = "SSL_write" in symbols or "SSL_write_ex" in symbols
    reads = "SSL_read" in symbols or "SSL_read_ex" in symbols
    return writes and reads


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
    """SSL functions it defines."""
    pids: set[int] = field(default_factory=set)
    """Processes seen mapping it."""
    skipped: str = ""
    """Why it is not hooked ("go", "no_ssl_symbols", "unreadable", or a located
    library's reason such as "static BoringSSL, functions not located (...)"), or empty."""
    tls: str = ""
    """The TLS library found without symbols ("boringssl-static"), or empty."""
    addresses: dict[str, int] = field(default_factory=dict)
    """Entry addresses of functions located without symbols (name to virtual address)."""
    locate_ms: float = 0.0
    """Time spent locating them."""


def _static_target(
    *, path: str, key: tuple[str, int], kind: str, symbols: tuple[str, ...]
) -> Target:
    """A file without exported SSL functions: hookable only if a static TLS row locates them."""
    judged = judge_static_tls(path)
    if judged is None:
        return Target(path=path, key=key, kind=kind, symbols=symbols, skipped="no_ssl_symbols")
    found = judged.found
    if not isinstance(found, Located):
        return Target(path=path, key=key, kind=kind, symbols=(), tls=judged.library,
                      skipped=found.reason)  # fmt: skip
    return Target(
        path=path, key=key, kind=kind, symbols=tuple(n for n, _ in found.addresses),
        tls=judged.library, addresses=dict(found.addresses), locate_ms=found.locate_ms,
    )  # fmt: skip


def _dev_matches(dev: str, st_dev: int) -> bool:
    major, _, minor = dev.partition(":")
    try:
        return os.major(st_dev) == int(major, 16) and os.minor(st_dev) == int(minor, 16)
    except ValueError:
        return False


class Discovery:
    """Finds hookable files through /proc and remembers every file it has judged."""

    def __init__(self, *, proc: Path = Path("/proc"), exclude_pids: tuple[int, ...] = ()) -> None:
        self._proc = proc
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
        path = self._attach_path(pid, mapping)
        facts = elf_facts(path)
        if facts is None:
            target = Target(path=path, key=key, kind=kind, symbols=(), skipped="unreadable")
        elif facts.is_go:
            target = Target(path=path, key=key, kind=kind, symbols=facts.symbols, skipped="go")
        elif not _hookable(facts.symbols):
            target = _static_target(path=path, key=key, kind=kind, symbols=facts.symbols)
        else:
            target = Target(path=path, key=key, kind=kind, symbols=facts.symbols)
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
            elif _CANDIDATE_RE.search(mapping.path):
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
        """Judge the system's libssl files and common TLS-carrying executables.

        Returns:
            Files found hookable for the first time.
        """
        new: list[Target] = []
        paths = [(p, "library") for g in SYSTEM_LIB_GLOBS for p in sorted(glob.glob(g))]
        paths += [(p, "executable") for p in SYSTEM_EXECUTABLES]
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
