"""What a TLS library row declares, and the default ways of judging and locating.

One :class:`TlsLibrary` row per library (the rows live in
:mod:`lumen_sniff.capture.bpf.libraries`) says everything the capture knows of it:

- how its files are recognised: names of mapped files worth an ELF look, paths
  judged at start, and :attr:`TlsLibrary.judge`, which accepts or refuses a file
  from its :class:`~lumen_sniff.capture.bpf.elf.ElfFacts`;
- the functions it needs (:attr:`TlsLibrary.symbols`, looked up in ``.dynsym``
  and ``.symtab``), its probes, its close function and its argument convention;
- :attr:`TlsLibrary.locate`, which turns a judged file into
  :class:`AttachPoint` values (path, symbol or address, BPF function, uprobe or
  uretprobe). The default attaches by symbol; a row whose functions have no
  symbol (static, stripped BoringSSL) or must not get uretprobes (Go: a
  uretprobe rewrites the return address on a stack the Go runtime moves) gives
  its own locator, which finds addresses (verified before use) and, for
  :attr:`ProbeKind.RET_OFFSETS`, one uprobe per RET instruction.

Discovery, the loader and ``lumen-sniff doctor`` read only these rows.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from lumen_sniff.capture.bpf.elf import ElfFacts

__all__ = [
    "NO_TLS_SYMBOLS",
    "SKIP_REASONS",
    "ArgConvention",
    "AttachPoint",
    "Judge",
    "Locator",
    "Probe",
    "ProbeKind",
    "TlsLibrary",
    "by_symbol",
    "requires_symbols",
]

NO_TLS_SYMBOLS = "no_tls_symbols"
"""Skip reason: the file defines none of the functions any row needs."""

SKIP_REASONS: dict[str, str] = {
    NO_TLS_SYMBOLS: "defines no TLS functions a row needs",
    "go": "a Go binary carrying this C library: its uretprobes would crash Go",
    "unreadable": "file not readable as ELF",
}
"""Why a file is not hooked, for status and doctor. Rows may add their own reasons."""


class ProbeKind(enum.Enum):
    """Where on a function a probe fires."""

    ENTRY = "entry"
    """A uprobe on the function's first instruction."""
    RETURN = "return"
    """A uretprobe: fires on return. Never on Go code (see the module docstring)."""
    RET_OFFSETS = "ret_offsets"
    """A uprobe on each RET instruction inside the function; the row's locator finds
    them (by disassembly) and yields one entry-style attach point per RET."""


class ArgConvention(enum.Enum):
    """How the BPF handlers read a hooked function's arguments and result."""

    SYSV = "sysv"
    """C calling convention (x86-64 SysV / AArch64 AAPCS): ``(handle, buf, len[, size_t
    *done])`` in the first argument registers, the result in the return register;
    a call in flight is keyed by thread id."""
    GO_REGABI = "go_regabi"
    """Go's register ABI (Go 1.17+): arguments in Go's register order; a call in flight
    is keyed by goroutine, since goroutines move between threads."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Probe:
    """One probe: a library function and the BPF function that handles it."""

    sym: str
    """The library function (its symbol name, even where a locator finds it by address)."""
    fn_name: str
    """BPF function in ``bpf/lumen.bpf.c``."""
    kind: ProbeKind
    """Entry, return, or each RET instruction."""

    @property
    def label(self) -> str:
        """``SSL_write``, ``SSL_write:ret`` or ``SSL_write:rets``, for status."""
        suffix = {ProbeKind.ENTRY: "", ProbeKind.RETURN: ":ret", ProbeKind.RET_OFFSETS: ":rets"}
        return self.sym + suffix[self.kind]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttachPoint:
    """One uprobe or uretprobe to attach: where, and which BPF function runs."""

    path: str
    """File to attach to (host path or /proc/PID/root/...)."""
    sym: str
    """Symbol to attach at; empty when attaching at ``addr``."""
    addr: int
    """Virtual address in the file (as ``st_value`` gives it) when ``sym`` is empty."""
    fn_name: str
    """BPF function in ``bpf/lumen.bpf.c``."""
    ret: bool
    """A uretprobe rather than a uprobe."""
    label: str
    """What status shows for it (the probe's label)."""


Judge = Callable[["TlsLibrary", ElfFacts], str]
"""(row, facts) -> "" to hook the file with this row, else the reason it does not fit."""
Locator = Callable[["TlsLibrary", str, ElfFacts], tuple[AttachPoint, ...]]
"""(row, path, facts) -> the attach points for a file the row accepted."""


def requires_symbols(library: TlsLibrary, facts: ElfFacts) -> str:
    """Accept a file that defines a function of each of the row's ``required`` groups.

    A row with uretprobes refuses Go files that carry its functions (cgo): uretprobes
    corrupt goroutine stacks. Go's own crypto/tls is the Go row's.
    """
    if not all(any(s in facts.symbols for s in group) for group in library.required):
        return NO_TLS_SYMBOLS
    if facts.is_go and any(p.kind is ProbeKind.RETURN for p in library.probes):
        return "go"
    return ""


def by_symbol(library: TlsLibrary, path: str, facts: ElfFacts) -> tuple[AttachPoint, ...]:
    """Attach each entry/return probe at its symbol, where the file defines it."""
    return tuple(
        AttachPoint(
            path=path,
            sym=probe.sym,
            addr=0,
            fn_name=probe.fn_name,
            ret=probe.kind is ProbeKind.RETURN,
            label=probe.label,
        )
        for probe in library.probes
        if probe.sym in facts.symbols and probe.kind is not ProbeKind.RET_OFFSETS
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsLibrary:
    """One TLS library: how its files are recognised and how they are hooked."""

    name: str
    """Short name ("openssl"), shown in status."""
    file_names: re.Pattern[str]
    """Mapped files (other than a process's executable, always judged) worth an ELF look."""
    system_libraries: tuple[str, ...]
    """Globs of libraries judged at start even when no process maps them yet, so a
    short-lived client started later is covered from its first byte."""
    system_executables: tuple[str, ...]
    """Executables that carry the library statically, judged at start for the same reason."""
    symbols: tuple[str, ...]
    """Every function the row's probes and judge use (read from .dynsym and .symtab)."""
    required: tuple[tuple[str, ...], ...]
    """For :func:`requires_symbols`: the file defines one function of each group."""
    probes: tuple[Probe, ...]
    """Every probe, in attach order."""
    close: str
    """The function that frees a connection (its probe ends the connection's stream)."""
    args: ArgConvention
    """How the BPF handlers read arguments, and what keys a call in flight."""
    judge: Judge = requires_symbols
    """Accepts or refuses a file."""
    locate: Locator = by_symbol
    """Attach points for an accepted file."""
