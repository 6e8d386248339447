"""Go's crypto/tls, in every Go executable (stripped ones too).

The row's judge and locator are :mod:`lumen_sniff.capture.bpf.golang.locate`:
functions come from Go's own table (``.gopclntab``), probes sit at the entry
and at every RET (never a uretprobe: Go moves stacks), and a binary whose
version or disassembly is not what the register-ABI handlers expect is refused
with the reason.
"""

from __future__ import annotations

import functools
import os
import re

from lumen_sniff.capture.bpf.elf import ElfFacts
from lumen_sniff.capture.bpf.golang.locate import (
    GO_CLOSE,
    GO_READ,
    GO_WRITE,
    NO_GO_TLS,
    GoHooks,
    locate,
)
from lumen_sniff.capture.bpf.tlslib import (
    NO_TLS_SYMBOLS,
    ArgConvention,
    AttachPoint,
    Probe,
    ProbeKind,
    TlsLibrary,
)

__all__ = ["GOLANG"]

_E, _RETS = ProbeKind.ENTRY, ProbeKind.RET_OFFSETS

@functools.lru_cache(maxsize=256)
def _hooks_of(path: str, _identity: tuple[int, int, int, int]) -> GoHooks:
    # Judge and locator both need the result; keyed by the file's identity too,
    # so a binary replaced under the same name is looked at afresh.
    return locate(path)


def _hooks(path: str) -> GoHooks:
    try:
        st = os.stat(path)
    except OSError as exc:
        return GoHooks(version="", functions=(), refused=f"unreadable Go binary: {exc}")
    return _hooks_of(path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def _judge(_library: TlsLibrary, facts: ElfFacts) -> str:
    if not facts.is_go:
        return NO_TLS_SYMBOLS
    refused = _hooks(facts.path).refused
    if refused == NO_GO_TLS:
        return NO_TLS_SYMBOLS  # a Go program that cannot speak TLS at all
    return f"go: {refused}" if refused else ""


def _locate(library: TlsLibrary, path: str, _facts: ElfFacts) -> tuple[AttachPoint, ...]:
    hooks = _hooks(path)
    points: list[AttachPoint] = []
    for probe in library.probes:
        func = hooks.function(probe.sym)
        if func is None:
            continue  # Close is optional; the judge made sure Write and Read are there
        if probe.kind is _RETS:
            # One uprobe per RET; status names each address.
            where = [(addr, f"{probe.sym}:ret@{addr:#x}") for addr in func.returns]
        else:
            where = [(func.entry, probe.label)]
        points += [
            AttachPoint(path=path, sym="", addr=a, fn_name=probe.fn_name, ret=False, label=lbl)
            for a, lbl in where
        ]
    return tuple(points)


GOLANG = TlsLibrary(
    name="go",
    file_names=re.compile(r"(?!)"),  # Go links statically: only executables are judged
    system_libraries=(),
    system_executables=(),
    symbols=(GO_WRITE, GO_READ, GO_CLOSE),
    required=((GO_WRITE,), (GO_READ,)),
    probes=(
        Probe(sym=GO_WRITE, fn_name="lumen_go_enter_write", kind=_E),
        Probe(sym=GO_WRITE, fn_name="lumen_go_ret_write", kind=_RETS),
        Probe(sym=GO_READ, fn_name="lumen_go_enter_read", kind=_E),
        Probe(sym=GO_READ, fn_name="lumen_go_ret_read", kind=_RETS),
        Probe(sym=GO_CLOSE, fn_name="lumen_go_enter_close", kind=_E),
    ),
    close=GO_CLOSE,
    args=ArgConvention.GO_REGABI,
    judge=_judge,
    locate=_locate,
)
"""``(*Conn).Write`` and ``(*Conn).Read`` at entry and every RET, ``(*Conn).Close`` at entry.
Register ABI (Go 1.17+); calls in flight keyed by goroutine, connections by the
``*tls.Conn`` with the tgid."""
