"""Read-only views of a large ELF executable for locating functions without symbols.

An executable such as Claude Code is 250-400 MB with a 130 MB ``.text``. Every
scan here works on a memory map through numpy (no copy of the section), so a
whole-text pass costs a fraction of a second:

- strings in a read-only data section, by suffix (``/ssl/ssl_lib.cc``);
- instructions that load an address into a register, both the absolute form a
  non-PIE executable uses (``mov ecx, imm32``) and the RIP-relative ``lea`` of a
  PIE one;
- direct ``call rel32`` sites of a set of targets (is an address a function entry
  that something calls?).

Headers come from :mod:`~lumen_sniff.capture.bpf.elfheaders`, the bytes from the
map. numpy is imported by the scans that need it (the instruction passes of the
BoringSSL locator), not by opening an image: discovery opens one for every
executable without TLS symbols just to look for a marker string, and a daemon
that never meets a stripped BoringSSL binary never loads numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lumen_sniff.capture.bpf.elfheaders import (
    EM_X86_64,
    ET_DYN,
    SHT_PROGBITS,
    map_file,
    read_headers,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["AddressLoad", "ElfImage", "Section"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Section:
    """One allocated section of the file."""

    name: str
    """Section name (".text")."""
    vaddr: int
    """Virtual address of its first byte."""
    offset: int
    """File offset of its first byte."""
    size: int
    """Size in bytes."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AddressLoad:
    """An instruction that puts a known address into a register."""

    insn_vaddr: int
    """Address of the instruction."""
    register: str
    """64-bit name of the destination register ("rcx")."""


# mov r32, imm32 is B8+r; with REX.B (0x41) the register is r8d..r15d.
_REGS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi")
_REGS_X = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


class ElfImage:
    """An ELF64 x86-64 file mapped read-only; close it (or use ``with``) when done."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._call_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._map = map_file(path)
        try:
            headers = read_headers(self._map)
            if headers.machine != EM_X86_64 or headers.elfclass != 64:
                raise ValueError("not an x86-64 ELF64 file")
            self.is_pie = headers.type == ET_DYN
            self.sections = {
                s.name: Section(name=s.name, vaddr=s.addr, offset=s.offset, size=s.size)
                for s in headers.sections
                if s.type == SHT_PROGBITS and s.addr and s.offset + s.size <= len(self._map)
            }
            self.build_id = headers.build_id(self._map)
        except ValueError:
            self.close()
            raise

    def close(self) -> None:
        """Unmap the file."""
        self._map.close()

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- bytes

    def section_of(self, vaddr: int) -> Section | None:
        """The section holding ``vaddr``, if any."""
        return next(
            (s for s in self.sections.values() if s.vaddr <= vaddr < s.vaddr + s.size), None
        )

    def read(self, vaddr: int, size: int) -> bytes:
        """Bytes of the file at a virtual address (inside a section)."""
        for sec in self.sections.values():
            if sec.vaddr <= vaddr and vaddr + size <= sec.vaddr + sec.size:
                start = sec.offset + vaddr - sec.vaddr
                return self._map[start : start + size]
        raise ValueError(f"{vaddr:#x} is not inside a section")

    def _array(self, sec: Section) -> np.ndarray:
        import numpy as np

        return np.frombuffer(self._map, dtype=np.uint8, count=sec.size, offset=sec.offset)

    # ------------------------------------------------------------- scans

    def strings_ending(self, suffix: bytes, section: str = ".rodata") -> list[int]:
        """Addresses of the NUL-terminated strings that end with ``suffix``."""
        sec = self.sections.get(section)
        if sec is None:
            return []
        needle = suffix + b"\0"
        end = sec.offset + sec.size
        out: list[int] = []
        pos = self._map.find(needle, sec.offset, end)
        while pos != -1:
            start = self._map.rfind(b"\0", sec.offset, pos) + 1 or sec.offset
            out.append(sec.vaddr + max(start, sec.offset) - sec.offset)
            pos = self._map.find(needle, pos + 1, end)
        return out

    def contains(self, needle: bytes, section: str = ".rodata") -> bool:
        """The section holds these bytes."""
        sec = self.sections.get(section)
        return sec is not None and self._map.find(needle, sec.offset, sec.offset + sec.size) != -1

    def address_loads(self, target: int, section: str = ".text") -> list[AddressLoad]:
        """Instructions that load ``target`` into a register.

        Non-PIE: ``mov r32, imm32`` (the address fits 32 bits). PIE: ``lea r64, [rip+disp32]``.
        """
        sec = self.sections.get(section)
        if sec is None:
            return []
        out: list[AddressLoad] = []
        if target < 1 << 32 and not self.is_pie:
            imm = target.to_bytes(4, "little")
            end = sec.offset + sec.size
            pos = self._map.find(imm, sec.offset + 1, end)
            while pos != -1:
                op = self._map[pos - 1]
                if 0xB8 <= op <= 0xBF:
                    rex_b = self._map[pos - 2] == 0x41
                    regs = _REGS_X if rex_b else _REGS
                    start = pos - sec.offset - (2 if rex_b else 1)
                    out.append(AddressLoad(insn_vaddr=sec.vaddr + start, register=regs[op - 0xB8]))
                pos = self._map.find(imm, pos + 1, end)
            if out:
                return out  # non-PIE code loads addresses this way; skip the lea pass
        import numpy as np

        text = self._array(sec)
        # lea r64, [rip + disp32]: REX.W(+R) 8D modrm(mod=00, rm=101) disp32.
        cand = np.flatnonzero(text[1:-6] == 0x8D) + 1
        rex = text[cand - 1]
        modrm = text[cand + 1]
        keep = ((rex == 0x48) | (rex == 0x4C)) & ((modrm & 0xC7) == 0x05)
        cand = cand[keep]
        disp = (
            text[cand + 2].astype(np.uint32)
            | text[cand + 3].astype(np.uint32) << 8
            | text[cand + 4].astype(np.uint32) << 16
            | text[cand + 5].astype(np.uint32) << 24
        ).view(np.int32)
        ends = cand.astype(np.int64) + 6 + sec.vaddr
        for i in np.flatnonzero(ends + disp == target).tolist():
            pos = int(cand[i])
            reg = (int(text[pos + 1]) >> 3) & 7
            regs = _REGS_X if int(text[pos - 1]) == 0x4C else _REGS
            out.append(AddressLoad(insn_vaddr=sec.vaddr + pos - 1, register=regs[reg]))
        return out

    def call_sites(self, targets: set[int], section: str = ".text") -> dict[int, list[int]]:
        """Direct ``call rel32`` instructions (E8) whose target is in ``targets``.

        Byte-level: an E8 inside another instruction may be counted; callers use
        this as one piece of evidence among several, never alone.
        """
        out: dict[int, list[int]] = {t: [] for t in targets}
        sec = self.sections.get(section)
        if sec is None or not targets:
            return out
        import numpy as np

        sites, dests = self._calls(sec)
        wanted = np.fromiter(targets, dtype=np.int64)
        for i in np.flatnonzero(np.isin(dests, wanted)).tolist():
            out[int(dests[i])].append(int(sites[i]))
        return out

    def _calls(self, sec: Section) -> tuple[np.ndarray, np.ndarray]:
        # One pass over the section per image, however many queries follow.
        cached = self._call_cache.get(sec.name)
        if cached is not None:
            return cached
        import numpy as np

        text = self._array(sec)
        cand = np.flatnonzero(text[:-4] == 0xE8)
        rel = (
            text[cand + 1].astype(np.uint32)
            | text[cand + 2].astype(np.uint32) << 8
            | text[cand + 3].astype(np.uint32) << 16
            | text[cand + 4].astype(np.uint32) << 24
        ).view(np.int32)
        sites = cand.astype(np.int64) + sec.vaddr
        result = (sites, sites + 5 + rel)
        self._call_cache[sec.name] = result
        return result
