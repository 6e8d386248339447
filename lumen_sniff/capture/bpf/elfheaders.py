"""An ELF file's header and section headers, read from a memory map without parsing anything else.

Discovery judges every executable a process execs, and the cheap answer ("no
TLS here") must stay cheap. pyelftools builds a full section object for every
section it is asked to walk: on ``iter_sections()`` or a first lookup by name it
decodes the whole ``.gnu.hash`` table through its ``construct`` layer, which takes
0.7 s for node's 141k-entry table on this machine. The header layout is fixed by
the ELF specification (``Elf{32,64}_Ehdr``, ``Elf{32,64}_Shdr``, notes), so it is
unpacked here with :mod:`struct` from a read-only map: a few microseconds, and no
byte of a section is read until a caller looks at it.

:func:`read_headers` never reads past the map; a truncated or foreign file raises
``ValueError``, which callers already treat as "not a readable ELF file".
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

__all__ = [
    "EM_X86_64",
    "ET_DYN",
    "SHT_NOBITS",
    "SHT_PROGBITS",
    "ElfHeaders",
    "SectionHeader",
    "load_segments",
    "map_file",
    "read_headers",
]

EM_X86_64 = 62
ET_DYN = 3
SHT_PROGBITS = 1
SHT_NOTE = 7
SHT_NOBITS = 8
_NT_GNU_BUILD_ID = 3
_SHN_XINDEX = 0xFFFF
_MAX_SECTIONS = 65536
"""More section headers than any real file has: a damaged count is refused, not walked."""

# After the 16-byte e_ident: e_type .. e_shstrndx.
_EHDR = {1: "HHIIIIIHHHHHH", 2: "HHIQQQIHHHHHH"}
# sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info,
# sh_addralign, sh_entsize
_SHDR = {1: "IIIIIIIIII", 2: "IIQQQQIIQQ"}
# Program headers differ in field order by class: (format, index of p_type,
# p_offset, p_vaddr, p_memsz).
_PHDR = {1: ("IIIIIIII", 0, 1, 2, 5), 2: ("IIQQQQQQ", 0, 2, 3, 6)}
_PT_LOAD = 1
_PN_XNUM = 0xFFFF


@dataclass(frozen=True, kw_only=True, slots=True)
class SectionHeader:
    """One section header, with its name resolved."""

    name: str
    """Section name (".text")."""
    type: int
    """``sh_type`` (1 PROGBITS, 8 NOBITS, ...)."""
    addr: int
    """Virtual address of its first byte (0 when not loaded)."""
    offset: int
    """File offset of its first byte."""
    size: int
    """Size in bytes."""
    link: int
    """``sh_link``: for a symbol table, the index of its string table."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ElfHeaders:
    """What the ELF header and section header table say."""

    elfclass: int
    """32 or 64."""
    little_endian: bool
    """Byte order."""
    machine: int
    """``e_machine`` (62 is x86-64)."""
    type: int
    """``e_type`` (3 is ET_DYN: a PIE executable or a shared library)."""
    sections: tuple[SectionHeader, ...]
    """Every section header, by index."""

    def section(self, name: str) -> SectionHeader | None:
        """The first section called ``name``, or None."""
        return next((s for s in self.sections if s.name == name), None)

    def build_id(self, data: mmap.mmap) -> str:
        """The GNU build id (hex), from any note section; "" when the file has none."""
        order = "<" if self.little_endian else ">"
        for sec in self.sections:
            if sec.type != SHT_NOTE:
                continue
            pos, end = sec.offset, min(sec.offset + sec.size, len(data))
            while pos + 12 <= end:
                namesz, descsz, kind = struct.unpack_from(order + "III", data, pos)
                name_at = pos + 12
                desc_at = name_at + _align4(namesz)
                if kind == _NT_GNU_BUILD_ID and data[name_at : name_at + namesz] == b"GNU\0":
                    return data[desc_at : desc_at + descsz].hex()
                pos = desc_at + _align4(descsz)
        return ""


def _ident(data: mmap.mmap | bytes) -> tuple[int, int, str]:
    """(EI_CLASS, EI_DATA, struct byte-order prefix) of an ELF file, or ValueError."""
    if len(data) < 16 or data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    elfclass, byteorder = data[4], data[5]
    if elfclass not in _EHDR or byteorder not in (1, 2):
        raise ValueError("unknown ELF class or byte order")
    return elfclass, byteorder, "<" if byteorder == 1 else ">"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def map_file(path: str) -> mmap.mmap:
    """Map a file read-only (the caller closes the map).

    Raises:
        OSError: it cannot be opened.
        ValueError: it is empty.
    """
    with open(path, "rb") as handle:
        # The map keeps its own reference to the file; the descriptor can go.
        return mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)


def read_headers(data: mmap.mmap | bytes) -> ElfHeaders:
    """Unpack the ELF header and every section header of a mapped file.

    Raises:
        ValueError: not an ELF file, or its headers point outside it.
    """
    elfclass, byteorder, order = _ident(data)
    try:
        ehdr = struct.unpack_from(order + _EHDR[elfclass], data, 16)
        e_type, machine = ehdr[0], ehdr[1]
        shoff, shentsize, shnum, shstrndx = ehdr[5], ehdr[10], ehdr[11], ehdr[12]
        shdr = struct.Struct(order + _SHDR[elfclass])
        if shoff == 0:
            return ElfHeaders(
                elfclass=32 * elfclass, little_endian=byteorder == 1, machine=machine,
                type=e_type, sections=(),
            )  # fmt: skip
        if shentsize < shdr.size:
            raise ValueError("section header entries too small")
        first = shdr.unpack_from(data, shoff)
        # Extended numbering: the real count and string-table index live in section 0.
        count = shnum or first[5]
        if shstrndx == _SHN_XINDEX:
            shstrndx = first[6]
        if count > _MAX_SECTIONS or shoff + count * shentsize > len(data):
            raise ValueError("section headers point outside the file")
        raw = [shdr.unpack_from(data, shoff + i * shentsize) for i in range(count)]
    except struct.error as exc:
        raise ValueError(f"truncated ELF headers: {exc}") from exc
    names = raw[shstrndx] if shstrndx < count else None
    sections = tuple(
        SectionHeader(
            name=_name(data, names[4], names[5], h[0]) if names else "",
            type=h[1],
            addr=h[3],
            offset=h[4],
            size=h[5],
            link=h[6],
        )  # fmt: skip
        for h in raw
    )
    return ElfHeaders(
        elfclass=32 * elfclass, little_endian=byteorder == 1, machine=machine,
        type=e_type, sections=sections,
    )  # fmt: skip


def _name(data: mmap.mmap | bytes, table_offset: int, table_size: int, offset: int) -> str:
    if offset >= table_size:
        return ""
    start = table_offset + offset
    end = data.find(b"\0", start, table_offset + table_size)
    return bytes(data[start : end if end != -1 else table_offset + table_size]).decode(
        "utf-8", "replace"
    )


def load_segments(data: mmap.mmap | bytes) -> tuple[tuple[int, int, int], ...]:
    """(p_vaddr, p_memsz, p_offset) of each ``PT_LOAD`` program header, in file order.

    What a uprobe's file offset is computed from (``runtime/uprobes.py``); pyelftools
    took ~0.1 s of a start to build segment objects for the same few numbers.

    Raises:
        ValueError: not an ELF file, or its program headers point outside it.
    """
    elfclass, byteorder, order = _ident(data)
    fmt, i_type, i_offset, i_vaddr, i_memsz = _PHDR[elfclass]
    phdr = struct.Struct(order + fmt)
    try:
        ehdr = struct.unpack_from(order + _EHDR[elfclass], data, 16)
        phoff, phentsize, phnum, shoff = ehdr[4], ehdr[8], ehdr[9], ehdr[5]
        if phnum == _PN_XNUM:  # extended numbering: the count is section 0's sh_info
            phnum = struct.unpack_from(order + _SHDR[elfclass], data, shoff)[7]
        if phnum and phentsize < phdr.size:
            raise ValueError("program header entries too small")
        if phoff + phnum * phentsize > len(data):
            raise ValueError("program headers point outside the file")
        rows = [phdr.unpack_from(data, phoff + i * phentsize) for i in range(phnum)]
    except struct.error as exc:
        raise ValueError(f"truncated ELF headers: {exc}") from exc
    return tuple((r[i_vaddr], r[i_memsz], r[i_offset]) for r in rows if r[i_type] == _PT_LOAD)
