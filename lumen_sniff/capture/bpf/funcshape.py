"""x86-64 function shapes, checked with capstone before any uprobe goes on an address.

A uprobe placed anywhere but on the first byte of an instruction corrupts the
process, and one placed inside the wrong function reads garbage. So an address
found without symbols is accepted as a function entry only when all of these hold:

- it is 16-byte aligned and preceded by ``int3`` padding (the linker's filler
  between functions; clang pads blocks inside a function with ``nop``);
- it starts with a frame-pointer prologue (``push rbp; mov rbp, rsp``), optionally
  after ``endbr64``;
- linear disassembly from it reaches the evidence (an error site) exactly on an
  instruction boundary, decoding every byte, with no ``int3`` on the way and no
  other function-like start (an aligned prologue right after ``ret``/``jmp``) in
  between, which would mean the padding was missing and the entry is too far back;
- something in the file calls it directly (checked by the caller, see elfscan).

When any check fails the answer is None: the caller reports, never guesses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from lumen_sniff.capture.bpf.elfscan import ElfImage

__all__ = ["Insn", "decode", "function_entry"]

MAX_FUNCTION_BYTES = 8192
"""Farthest an entry may lie before the evidence inside its function."""

_PROLOGUES = (b"\x55\x48\x89\xe5", b"\xf3\x0f\x1e\xfa\x55\x48\x89\xe5")
_ENDS = frozenset({"ret", "jmp", "ud2", "hlt"})


@functools.cache
def _disassembler() -> Any:
    # capstone (4 MB of library) loads on the first decode, not with discovery:
    # only a stripped BoringSSL binary ever needs it.
    import capstone

    return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)


@dataclass(frozen=True, kw_only=True, slots=True)
class Insn:
    """One decoded instruction."""

    vaddr: int
    """Its address."""
    size: int
    """Its length in bytes."""
    mnemonic: str
    """Capstone's mnemonic ("mov")."""
    op_str: str
    """Capstone's operand text ("ecx, 0xd47d7f")."""


def decode(code: bytes, vaddr: int, *, limit: int = 0) -> list[Insn]:
    """Disassemble ``code`` from its start until an undecodable byte (or ``limit`` insns)."""
    return [
        Insn(vaddr=a, size=s, mnemonic=m, op_str=o)
        for a, s, m, o in _disassembler().disasm_lite(code, vaddr, count=limit)
    ]


def function_entry(image: ElfImage, inside: int) -> int | None:
    """The entry of the function that contains the instruction at ``inside``.

    Args:
        image: The mapped file.
        inside: Address of an instruction known to be code (an error site).

    Returns:
        The verified entry, or None when the shape does not fit every rule above.
    """
    sec = image.section_of(inside)
    if sec is None:
        return None
    lo = max(inside - MAX_FUNCTION_BYTES, sec.vaddr + 1)
    try:
        window = image.read(lo, inside - lo + 16)
    except ValueError:
        return None
    start = (inside - 1) & ~0xF
    while start > lo:
        rel = start - lo
        if window[rel - 1] == 0xCC and window[rel : rel + 8].startswith(_PROLOGUES):
            return start if _reaches(window[rel:], start, inside) else None
        start -= 16
    return None


def _reaches(code: bytes, entry: int, target: int) -> bool:
    ended = False
    for insn in decode(code, entry):
        if insn.vaddr == target:
            return True
        if insn.vaddr > target or insn.mnemonic == "int3":
            return False
        at = insn.vaddr - entry
        if ended and insn.vaddr % 16 == 0 and code[at : at + 8].startswith(_PROLOGUES):
            return False  # an unpadded function start between entry and target
        if insn.mnemonic != "nop":  # alignment nops after a ret keep it "ended"
            ended = insn.mnemonic in _ENDS
    return False
