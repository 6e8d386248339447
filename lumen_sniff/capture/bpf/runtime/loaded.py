"""A compiled object made live: its maps created, programs loaded, probes attached.

:class:`BpfObject` speaks the part of bcc's ``BPF`` API the loaders use
(``obj[b"map"]``, ``load_func``, ``attach_uprobe``/``attach_uretprobe`` by
symbol or address, their ``detach_*``, ``cleanup``), so call sites read as they
did, but nothing here compiles: programs come from a
:class:`~lumen_sniff.capture.bpf.runtime.obj.CompiledObject`, and each is
loaded (and verified by the kernel) the first time it is needed.

A program's type is not guessed from its name: the loader passes a table of
:class:`ProgKind` rows (everything else is a kprobe/uprobe program).

Everything attached is held by a file descriptor of this process: a uprobe or
tracepoint perf event, a BPF link. :meth:`BpfObject.cleanup` closes them all,
and a killed daemon's descriptors are closed by the kernel, which detaches
everything with them.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from lumen_sniff.capture.bpf.runtime import libbpf as lb
from lumen_sniff.capture.bpf.runtime.maps import Table
from lumen_sniff.capture.bpf.runtime.obj import CompiledObject
from lumen_sniff.capture.bpf.runtime.uprobes import file_offset

__all__ = [
    "CGROUP_SKB",
    "CGROUP_SOCK_ADDR",
    "KPROBE",
    "TRACEPOINT",
    "BpfObject",
    "ProgKind",
]

KPROBE = 2
"""BPF_PROG_TYPE_KPROBE (uprobes too)."""
TRACEPOINT = 5
"""BPF_PROG_TYPE_TRACEPOINT."""
CGROUP_SKB = 8
"""BPF_PROG_TYPE_CGROUP_SKB."""
CGROUP_SOCK_ADDR = 18
"""BPF_PROG_TYPE_CGROUP_SOCK_ADDR."""

_EV_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgKind:
    """How one function of an object is loaded and attached."""

    prog_type: int
    """``enum bpf_prog_type``."""
    expected_attach_type: int = 0
    """``enum bpf_attach_type`` the kernel checks at load (cgroup sock_addr programs)."""
    tracepoint: str = ""
    """``category:event`` of a tracepoint (see :meth:`BpfObject.attach_tracepoints`)."""


_UPROBE = ProgKind(prog_type=KPROBE)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BpfObject:
    """Maps and programs of one compiled object, in the kernel.

    Args:
        obj: The compiled object.
        kinds: Function name → how to load it; unnamed functions are uprobe programs.

    Raises:
        OSError: a map could not be created (nothing stays allocated).
    """

    def __init__(self, obj: CompiledObject, kinds: Mapping[str, ProgKind] | None = None) -> None:
        self.obj = obj
        self._kinds = dict(kinds or {})
        self._map_fds: list[int] = []
        self._tables: dict[str, Table] = {}
        self._prog_fds: dict[str, int] = {}
        self._uprobes: dict[tuple[bool, str, int, str], tuple[int, str]] = {}
        self._perf_fds: list[int] = []
        self._links: list[int] = []
        try:
            for spec in obj.maps:
                fd = lb.map_create(
                    spec.type,
                    spec.name,
                    spec.key_size,
                    spec.value_size,
                    spec.max_entries,
                    spec.flags,
                )
                self._map_fds.append(fd)
                self._tables[spec.name] = Table(fd, spec)
        except OSError:
            self.cleanup()
            raise

    def __getitem__(self, name: str | bytes) -> Table:
        """The map called ``name`` (bcc's ``BPF[name]``); KeyError when there is none."""
        return self._tables[_text(name)]

    def load_func(self, fn_name: str | bytes) -> int:
        """The program's file descriptor, loading it on first use.

        Raises:
            KeyError: the object has no such function.
            OSError: the kernel refused it (the verifier log's tail is in the message).
        """
        name = _text(fn_name)
        fd = self._prog_fds.get(name)
        if fd is None:
            code = self.obj.program(name)
            kind = self._kinds.get(name, _UPROBE)
            fd = lb.prog_load(
                kind.prog_type,
                name,
                code.relocated(self._map_fds),
                license=self.obj.license,
                kern_version=self.obj.kern_version,
                expected_attach_type=kind.expected_attach_type,
                funcs=code.funcs,
            )
            self._prog_fds[name] = fd
        return fd

    # ------------------------------------------------------------- uprobes

    def _uprobe_key(
        self, ret: bool, name: str | bytes, sym: str | bytes, addr: int | None, fn: str
    ) -> tuple[tuple[bool, str, int, str], str]:
        path = _text(name)
        offset = file_offset(path, sym=_text(sym), addr=addr)
        ev_name = f"{'r' if ret else 'p'}_{_EV_NAME.sub('_', path)}_0x{offset:x}"
        return (ret, path, offset, fn), ev_name

    def _attach(
        self, ret: bool, name: str | bytes, sym: str | bytes, addr: int | None, fn: str | bytes
    ) -> None:
        key, ev_name = self._uprobe_key(ret, name, sym, addr, _text(fn))
        if key in self._uprobes:
            return  # already there: a second perf event would run the program twice
        prog = self.load_func(fn)
        fd = lb.attach_uprobe(prog, key[1], key[2], ret=ret, ev_name=ev_name)
        self._uprobes[key] = (fd, ev_name)

    def attach_uprobe(
        self,
        *,
        name: str | bytes,
        fn_name: str | bytes,
        sym: str | bytes = "",
        addr: int | None = None,
    ) -> None:
        """Run ``fn_name`` on entry of ``sym`` (or at virtual address ``addr``) in file ``name``."""
        self._attach(False, name, sym, addr, fn_name)

    def attach_uretprobe(
        self,
        *,
        name: str | bytes,
        fn_name: str | bytes,
        sym: str | bytes = "",
        addr: int | None = None,
    ) -> None:
        """Run ``fn_name`` on return from ``sym`` (or the function at ``addr``) in ``name``."""
        self._attach(True, name, sym, addr, fn_name)

    def _detach(self, ret: bool, name: str | bytes, sym: str | bytes, addr: int | None) -> None:
        (_, path, offset, _), _ev = self._uprobe_key(ret, name, sym, addr, "")
        for key in [k for k in self._uprobes if k[:3] == (ret, path, offset)]:
            fd, ev_name = self._uprobes.pop(key)
            lb.detach_uprobe(fd, ev_name)

    def detach_uprobe(
        self, *, name: str | bytes, sym: str | bytes = "", addr: int | None = None
    ) -> None:
        """Remove the entry probes at that place."""
        self._detach(False, name, sym, addr)

    def detach_uretprobe(
        self, *, name: str | bytes, sym: str | bytes = "", addr: int | None = None
    ) -> None:
        """Remove the return probes at that place."""
        self._detach(True, name, sym, addr)

    # --------------------------------------------------- tracepoints, links

    def attach_tracepoints(self) -> None:
        """Attach every function whose :class:`ProgKind` names a tracepoint."""
        for fn, kind in self._kinds.items():
            if kind.tracepoint:
                category, _, event = kind.tracepoint.partition(":")
                self._perf_fds.append(lb.attach_tracepoint(self.load_func(fn), category, event))

    def link(self, fn_name: str, target_fd: int, attach_type: int) -> int:
        """Link ``fn_name`` to ``target_fd`` (a cgroup); the object closes the link."""
        fd = lb.link_create(self.load_func(fn_name), target_fd, attach_type)
        self._links.append(fd)
        return fd

    def cleanup(self) -> None:
        """Detach everything and free the programs and maps."""
        for fd, ev_name in self._uprobes.values():
            lb.detach_uprobe(fd, ev_name)
        self._uprobes.clear()
        for fd in self._perf_fds:
            lb.close_perf_event(fd)
        self._perf_fds.clear()
        for fd in (*self._links, *self._prog_fds.values(), *self._map_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._links.clear()
        self._prog_fds.clear()
        self._map_fds.clear()
        self._tables.clear()

    def program_fds(self) -> dict[str, int]:
        """Loaded programs' descriptors by function name."""
        return dict(self._prog_fds)

    def uprobe_count(self) -> int:
        """Uprobes and uretprobes attached."""
        return len(self._uprobes)

    def __repr__(self) -> str:
        return f"BpfObject({len(self._tables)} maps, {len(self._prog_fds)} programs loaded)"
