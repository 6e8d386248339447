"""Where a uprobe goes in a file: a symbol or virtual address → a file offset.

The kernel's uprobes take (file, offset in the file). bcc computed that offset
in ``bcc_resolve_symname``: a symbol's ``st_value`` (from ``.dynsym`` or
``.symtab``, a defined function) or the given virtual address, moved into the
file through the ``PT_LOAD`` segment that contains it (``vaddr - p_vaddr +
p_offset``). This does the same with the mmap'd header reader
(:func:`~lumen_sniff.capture.bpf.elfheaders.load_segments`) and the symbol scan
discovery already uses (:func:`~lumen_sniff.capture.bpf.elf.elf_facts`);
``tests/unit/test_bpf_uprobes.py`` checks the two agree on real libraries.
"""

from __future__ import annotations

import functools
import os

from lumen_sniff.capture.bpf import elfheaders
from lumen_sniff.capture.bpf.elf import elf_facts

__all__ = ["file_offset", "load_segments"]


@functools.lru_cache(maxsize=256)
def _segments(path: str, _identity: tuple[int, int, int]) -> tuple[tuple[int, int, int], ...]:
    data = elfheaders.map_file(path)
    try:
        return elfheaders.load_segments(data)
    finally:
        data.close()


def load_segments(path: str) -> tuple[tuple[int, int, int], ...]:
    """(p_vaddr, p_memsz, p_offset) of each PT_LOAD segment (cached per file version)."""
    st = os.stat(path)
    try:
        return _segments(path, (st.st_dev, st.st_ino, st.st_mtime_ns))
    except ValueError as exc:  # not ELF, truncated, or empty (mmap of 0 bytes)
        raise OSError(f"{path}: not a readable ELF file ({exc})") from exc


def file_offset(path: str, *, sym: str = "", addr: int | None = None) -> int:
    """The file offset of ``sym`` (a defined function) or of virtual address ``addr``.

    Raises:
        OSError: the file is unreadable, the symbol is not defined there, or the
            address lies in no loadable segment.
    """
    if sym:
        facts = elf_facts(path, (sym,))
        found = facts.address(sym) if facts is not None else None
        if not found:
            raise OSError(f"could not determine address of symbol {sym} in {path}")
        vaddr = found
    elif addr is not None:
        vaddr = addr
    else:
        raise ValueError("a symbol or an address is needed")
    for p_vaddr, p_memsz, p_offset in load_segments(path):
        if p_vaddr <= vaddr < p_vaddr + p_memsz:
            return vaddr - p_vaddr + p_offset
    raise OSError(f"{path}: address {vaddr:#x} is in no loadable segment")
