"""Go's own function table (``runtime.pclntab``): function names to address ranges.

Strategy: a Go binary stripped with ``-ldflags=-s -w`` has no ``.symtab`` and no
DWARF, but the runtime needs its function table for stack traces and garbage
collection, so ``.gopclntab`` (``.data.rel.ro.gopclntab`` in PIE builds) is
always there. This module reads it from plain bytes: no I/O, no ELF, so it is
unit-tested with synthetic tables.

Layouts (``runtime/symtab.go``, ``cmd/link/internal/ld/pcln.go``), after the
8-byte prefix ``magic u32, pad u8, pad u8, minLC u8, ptrSize u8``:

==========  ==========================  ===========================================
magic       Go versions                 header words (ptrSize each)
==========  ==========================  ===========================================
0xfffffffa  1.16, 1.17                  nfunc nfiles funcname cu filetab pctab pcln
0xfffffff0  1.18, 1.19                  nfunc nfiles textStart funcname cu filetab
                                        pctab pcln
0xfffffff1  1.20 and later              as 1.18
==========  ==========================  ===========================================

The function table at ``pcln`` holds ``nfunc + 1`` pairs ``(entry, funcoff)``:
pointer-sized with an absolute entry for 1.16, ``u32`` with an entry relative
to ``textStart`` from 1.18. The last pair's entry is the end of the text. Each
``_func`` at ``pcln + funcoff`` starts with the entry (same width) and the
``int32`` offset of its NUL-terminated name in the name table. A function ends
where the next one starts (Go pads with INT3 between them).

Older layouts (0xfffffffb, Go 1.2 to 1.15) predate the register ABI and are not
read: nothing hookable lives in those binaries.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass

__all__ = ["MAGICS", "GoFunc", "PclnTable", "PclntabError", "find_header", "parse"]

MAGICS = {0xFFFFFFFA: "1.16", 0xFFFFFFF0: "1.18", 0xFFFFFFF1: "1.20"}
"""Header magic → the first Go version that wrote that layout."""


class PclntabError(ValueError):
    """The bytes are not a function table this reader understands."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GoFunc:
    """One function of the table."""

    name: str
    """Full Go name, e.g. ``crypto/tls.(*Conn).Write``."""
    entry: int
    """Virtual address of its first instruction."""
    end: int
    """Virtual address where the next function starts (padding included)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PclnTable:
    """A parsed header and where its tables are; functions are looked up on demand."""

    layout: str
    """"1.16", "1.18" or "1.20" (see :data:`MAGICS`)."""
    ptr_size: int
    """Pointer size of the target (8 on amd64)."""
    nfunc: int
    """Number of functions."""
    text_start: int
    """Base of relative entries (1.18+); 0 for 1.16, whose entries are absolute."""
    funcname_off: int
    """Offset of the name table from the header."""
    pcln_off: int
    """Offset of the function table from the header."""
    data: bytes
    """The bytes from the header to the end of the section."""

    def _entry(self, index: int) -> tuple[int, int]:
        """(entry address, funcoff) of function table row ``index``."""
        if self.layout == "1.16":
            pos = self.pcln_off + index * 2 * self.ptr_size
            fmt = "<QQ" if self.ptr_size == 8 else "<II"
            entry, funcoff = struct.unpack_from(fmt, self.data, pos)
            return entry, funcoff
        entry_off, funcoff = struct.unpack_from("<II", self.data, self.pcln_off + index * 8)
        return self.text_start + entry_off, funcoff

    def _name_offset(self, funcoff: int) -> int:
        width = self.ptr_size if self.layout == "1.16" else 4
        return int(struct.unpack_from("<i", self.data, self.pcln_off + funcoff + width)[0])

    def find(self, names: tuple[str, ...]) -> dict[str, GoFunc]:
        """Look functions up by full name.

        Names are found in the name table first, so the scan of the function
        table compares integers only.

        Args:
            names: Full Go names.

        Returns:
            The functions found, by name (absent names are left out).

        Raises:
            PclntabError: the table points outside its own bytes.
        """
        names_base = self.funcname_off
        wanted: dict[int, str] = {}
        for name in names:
            needle = b"\0" + name.encode() + b"\0"
            pos = self.data.find(needle, names_base)
            while pos != -1 and pos < self.pcln_off:
                wanted[pos + 1 - names_base] = name
                pos = self.data.find(needle, pos + 1)
            if self.data.startswith(needle[1:], names_base):
                wanted[0] = name
        found: dict[str, GoFunc] = {}
        if not wanted:
            return found
        try:
            found = self._find_fast(wanted)
            if len(set(wanted.values())) != len(found):
                found = self._find_linear(wanted)
        except (struct.error, TypeError) as exc:
            raise PclntabError(f"function table truncated: {exc}") from exc
        return found

    def _func(self, index: int, name: str) -> GoFunc:
        entry, _ = self._entry(index)
        end, _ = self._entry(index + 1)
        if end <= entry:
            raise PclntabError(f"{name}: function table out of order")
        return GoFunc(name=name, entry=entry, end=end)

    def _find_fast(self, wanted: dict[int, str]) -> dict[str, GoFunc]:
        # Search the _func records for each name offset (C speed), and accept a
        # hit only where the function table really points (bisect: the records
        # are laid out in table order). A large binary has 100k+ functions; a
        # Python loop over them all costs about half a second.
        wide = self.layout == "1.16" and self.ptr_size == 8
        head = self.ptr_size if self.layout == "1.16" else 4  # _func.entry before nameoff
        size = self.nfunc * 2 * (8 if wide else 4)
        rows = memoryview(self.data)[self.pcln_off : self.pcln_off + size]
        funcoffs = rows.cast("Q" if wide else "I")[1::2].tolist()
        found: dict[str, GoFunc] = {}
        for nameoff, name in wanted.items():
            needle = struct.pack("<i", nameoff)
            pos = self.data.find(needle, self.pcln_off)
            while pos != -1 and name not in found:
                funcoff = pos - head - self.pcln_off
                index = bisect.bisect_left(funcoffs, funcoff)
                if index < len(funcoffs) and funcoffs[index] == funcoff:
                    found[name] = self._func(index, name)
                pos = self.data.find(needle, pos + 1)
        return found

    def _find_linear(self, wanted: dict[int, str]) -> dict[str, GoFunc]:
        found: dict[str, GoFunc] = {}
        for index in range(self.nfunc):
            _entry, funcoff = self._entry(index)
            hit = wanted.get(self._name_offset(funcoff))
            if hit is not None and hit not in found:
                found[hit] = self._func(index, hit)
        return found


def parse(data: bytes | memoryview, *, text_addr: int = 0) -> PclnTable:
    """Read a pclntab header.

    Args:
        data: Bytes starting at the header (the section's contents).
        text_addr: Address of the text section, used when the 1.18+ header's
            ``textStart`` is 0 (PIE builds leave it to a dynamic relocation).

    Returns:
        The table.

    Raises:
        PclntabError: unknown magic, not amd64-sized, or offsets out of range.
    """
    table = _parse(data, text_addr=text_addr, check_only=False)
    assert table is not None
    return table


def _parse(
    data: bytes | memoryview, *, text_addr: int = 0, check_only: bool
) -> PclnTable | None:
    """:func:`parse`; with ``check_only``, validate without copying the bytes (None)."""
    if len(data) < 8:
        raise PclntabError("too short for a pclntab header")
    magic, pad1, pad2, min_lc, ptr_size = struct.unpack_from("<IBBBB", data, 0)
    layout = MAGICS.get(magic)
    if layout is None:
        raise PclntabError(f"unknown pclntab magic {magic:#x} (Go older than 1.16?)")
    if pad1 or pad2 or min_lc not in (1, 2, 4) or ptr_size not in (4, 8):
        raise PclntabError("malformed pclntab header")
    fmt = "<Q" if ptr_size == 8 else "<I"
    try:
        words = [
            struct.unpack_from(fmt, data, 8 + i * ptr_size)[0]
            for i in range(7 if layout == "1.16" else 8)
        ]
    except struct.error as exc:
        raise PclntabError("pclntab header truncated") from exc
    if layout == "1.16":
        nfunc, _nfiles, funcname_off, _cu, _filetab, _pctab, pcln_off = words
        text_start = 0
    else:
        nfunc, _nfiles, text_start, funcname_off, _cu, _filetab, _pctab, pcln_off = words
        text_start = text_start or text_addr
    row = 2 * ptr_size if layout == "1.16" else 8
    if not (0 < funcname_off < pcln_off and pcln_off + (nfunc + 1) * row <= len(data)):
        raise PclntabError("pclntab offsets out of range")
    if check_only:
        return None
    return PclnTable(
        layout=layout,
        ptr_size=ptr_size,
        nfunc=nfunc,
        text_start=text_start,
        funcname_off=funcname_off,
        pcln_off=pcln_off,
        data=bytes(data),
    )


def find_header(blob: bytes) -> int:
    """Offset of the first plausible pclntab header in ``blob``, or -1.

    For binaries whose pclntab has no section of its own (external linking puts
    it inside ``.data.rel.ro``) or no section headers at all: the header is
    8-aligned, has a known magic, zero padding, minLC 1 and 8-byte pointers, and
    must parse.
    """
    view = memoryview(blob)
    best = -1
    for magic in MAGICS:
        needle = struct.pack("<IBBBB", magic, 0, 0, 1, 8)
        pos = blob.find(needle)
        while pos != -1 and (best == -1 or pos < best):
            if pos % 8 == 0 and _plausible(view[pos:]):
                best = pos
                break
            pos = blob.find(needle, pos + 1)
    return best


def _plausible(view: memoryview) -> bool:
    try:
        _parse(view, check_only=True)
    except (PclntabError, struct.error):
        return False
    return True
