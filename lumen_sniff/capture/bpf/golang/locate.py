"""Where to put uprobes in a Go binary's ``crypto/tls``, checked before anything is attached.

Strategy:

- Go ≥ 1.17 passes arguments in registers (ABIInternal: receiver in RAX, a
  slice in RBX/RCX/RDI, results in RAX then RBX/RCX, the running goroutine's
  ``g`` in R14). Older binaries pass them on the stack, where the probes would
  read garbage: they are refused. The version comes from ``.go.buildinfo``, and
  the disassembly must show the ABIInternal stack check on ``[r14 + 0x10]``
  (``g.stackguard0``) in the function's first instructions, so a version string
  that lies is caught too.
- Functions are found through Go's own table (:mod:`.pclntab`), never through
  ``.symtab``, so stripped binaries (``-ldflags=-s -w``) work.
- Go moves goroutine stacks, and a uretprobe rewrites the return address on the
  stack: it crashes Go. So a function is hooked at its entry and at every
  ``RET`` inside it, found by a linear disassembly (capstone) of the whole
  function. Go's compiler puts no data in text and pads with INT3, so the sweep
  must decode every byte up to the padding, and the function must end with the
  ``jmp`` back to its entry that follows the ``morestack`` call. Anything else
  is a mismatch and the binary is refused, with the reason.
- Only x86-64 is handled.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError

from lumen_sniff.capture.bpf.golang.buildinfo import go_version, version_tuple
from lumen_sniff.capture.bpf.golang.pclntab import (
    GoFunc,
    PclntabError,
    PclnTable,
    find_header,
    parse,
)

__all__ = [
    "GO_CLOSE",
    "GO_READ",
    "GO_WRITE",
    "MIN_GO",
    "NO_GO_TLS",
    "GoFunction",
    "GoHooks",
    "check_function",
    "locate",
]

GO_WRITE = "crypto/tls.(*Conn).Write"
GO_READ = "crypto/tls.(*Conn).Read"
GO_CLOSE = "crypto/tls.(*Conn).Close"
NO_GO_TLS = "no_go_tls"
"""The refusal of a Go binary that does not link crypto/tls (nothing to hook, nothing to say)."""
MIN_GO = (1, 17)
"""First Go release with the register ABI on amd64."""

_MAX_FUNC_BYTES = 64 << 10
_STACK_CHECK = "qword ptr [r14 + 0x10]"


@dataclass(frozen=True, kw_only=True, slots=True)
class GoFunction:
    """A verified function: where to put its entry and return probes."""

    name: str
    """Full Go name."""
    entry: int
    """Virtual address of its first instruction."""
    returns: tuple[int, ...]
    """Virtual address of every RET instruction in it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GoHooks:
    """The outcome for one Go binary: attach points, or why there are none."""

    version: str
    """Go version from the build info ("" when unknown)."""
    functions: tuple[GoFunction, ...]
    """Verified Write, Read (and Close, when present) functions; empty when refused."""
    refused: str
    """Why the binary is not hooked ("" when it is); :data:`NO_GO_TLS` without crypto/tls."""

    def function(self, name: str) -> GoFunction | None:
        """The verified function called ``name``, if any."""
        return next((f for f in self.functions if f.name == name), None)


def _refuse(version: str, why: str) -> GoHooks:
    return GoHooks(version=version, functions=(), refused=why)


def check_function(code: bytes, func: GoFunc) -> GoFunction | str:
    """Disassemble one function and check that it has the expected Go shape.

    Args:
        code: The bytes from ``func.entry`` to ``func.end``.
        func: The function, as the pclntab gives it.

    Returns:
        The verified function, or a one-line reason for refusing it.
    """
    body = code.rstrip(b"\xcc")  # INT3 padding up to the next function
    if not body or len(body) > _MAX_FUNC_BYTES:
        return f"{func.name}: implausible size {len(code)}"
    import capstone  # only a Go binary with crypto/tls gets here; not loaded at start

    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    decoded = list(cs.disasm_lite(body, func.entry))
    if sum(size for _addr, size, _m, _o in decoded) != len(body):
        return f"{func.name}: bytes that do not decode as x86-64"
    head = decoded[:3]
    if not any(m == "cmp" and _STACK_CHECK in ops for _a, _s, m, ops in head):
        return f"{func.name}: no ABIInternal stack check on r14 (not the register ABI)"
    _addr, _size, last_m, last_ops = decoded[-1]
    if last_m != "jmp" or last_ops != hex(func.entry):
        return f"{func.name}: does not end with the morestack jump to its entry"
    returns = tuple(addr for addr, _s, m, _o in decoded if m == "ret")
    if not returns:
        return f"{func.name}: no RET instruction"
    if any(ops for _a, _s, m, ops in decoded if m == "ret"):
        return f"{func.name}: RET with an operand"
    return GoFunction(name=func.name, entry=func.entry, returns=returns)


class _Image:
    """Reads bytes at virtual addresses through the PT_LOAD segments."""

    def __init__(self, elf: Any, stream: BinaryIO) -> None:
        self._stream = stream
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        self._loads = [(s["p_vaddr"], s["p_offset"], s["p_filesz"]) for s in loads]
        self._data_loads = [
            (s["p_vaddr"], s["p_offset"], s["p_filesz"]) for s in loads if not s["p_flags"] & 1
        ]

    def read(self, addr: int, size: int) -> bytes | None:
        for vaddr, offset, filesz in self._loads:
            if vaddr <= addr and addr + size <= vaddr + filesz:
                self._stream.seek(offset + addr - vaddr)
                data = self._stream.read(size)
                return data if len(data) == size else None
        return None

    def data_blobs(self) -> list[bytes]:
        """The non-executable PT_LOAD segments (where Go's read-only tables live)."""
        blobs = []
        for _vaddr, offset, filesz in self._data_loads:
            self._stream.seek(offset)
            blobs.append(self._stream.read(filesz))
        return blobs


def _pclntab(elf: Any, image: _Image) -> PclnTable | None:
    text = elf.get_section_by_name(".text")
    text_addr = text["sh_addr"] if text is not None else 0
    for section in elf.iter_sections():
        if section.name.endswith("gopclntab"):
            return parse(section.data(), text_addr=text_addr)
    if not text_addr:
        return None
    # No section of its own (external linking merges it into .data.rel.ro), or no
    # section headers: look for the header in the data segments.
    for blob in image.data_blobs():
        pos = find_header(blob)
        if pos >= 0:
            return parse(blob[pos:], text_addr=text_addr)
    return None


def _version(elf: Any, image: _Image) -> str:
    section = elf.get_section_by_name(".go.buildinfo")
    if section is None:
        return ""
    return go_version(section.data()[:4096], image.read) or ""


def _locate(elf: Any, stream: BinaryIO) -> GoHooks:
    if elf["e_machine"] != "EM_X86_64" or elf.elfclass != 64:
        return _refuse("", f"Go binary for {elf['e_machine']}: only x86-64 is handled")
    image = _Image(elf, stream)
    version = _version(elf, image)
    numbers = version_tuple(version)
    if numbers is None:
        return _refuse(version, "Go version unknown (no readable .go.buildinfo)")
    if numbers < MIN_GO:
        return _refuse(version, f"{version} predates the register ABI (Go 1.17)")
    table = _pclntab(elf, image)
    if table is None:
        return _refuse(version, "no Go function table (.gopclntab) found")
    found = table.find((GO_WRITE, GO_READ, GO_CLOSE))
    if GO_WRITE not in found or GO_READ not in found:
        return _refuse(version, NO_GO_TLS)
    functions = []
    for name in (GO_WRITE, GO_READ, GO_CLOSE):
        func = found.get(name)
        if func is None:
            continue  # Close is optional: the LRU maps still age the connection out
        code = image.read(func.entry, func.end - func.entry)
        if code is None:
            return _refuse(version, f"{name}: outside the file's loaded segments")
        checked = check_function(code, func)
        if isinstance(checked, str):
            return _refuse(version, checked)
        functions.append(checked)
    return GoHooks(version=version, functions=tuple(functions), refused="")


def locate(path: str) -> GoHooks:
    """Find and verify the crypto/tls attach points of a Go executable.

    Args:
        path: The binary (host path or ``/proc/PID/root/...``).

    Returns:
        The attach points, or a refusal with its reason; never raises on bad files.
    """
    # pyelftools' ELF layer (with its DWARF modules) loads with the first Go binary.
    from elftools.elf import elffile

    elf_file: Callable[[BinaryIO], Any] = elffile.ELFFile  # untyped: Any here
    try:
        with open(path, "rb") as stream:
            return _locate(elf_file(stream), stream)
    except (OSError, ELFError, ConstructError, PclntabError, struct.error, ValueError) as exc:
        return _refuse("", f"unreadable Go binary: {exc}")
