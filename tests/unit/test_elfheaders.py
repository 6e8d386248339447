"""elfheaders agrees with pyelftools on real files, and refuses damaged ones."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from lumen_sniff.capture.bpf.elf import elf_facts
from lumen_sniff.capture.bpf.elfheaders import load_segments, map_file, read_headers
from tests.conftest import require_or_skip

_FILES = [
    p
    for p in (sys.executable, "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/bin/ls")
    if Path(p).exists()
]


@pytest.mark.parametrize("path", _FILES)
def test_sections_and_build_id_match_pyelftools(path: str) -> None:
    data = map_file(path)
    try:
        headers = read_headers(data)
        build_id = headers.build_id(data)
    finally:
        data.close()
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        expected = [
            (s.name, s["sh_addr"], s["sh_offset"], s["sh_size"], s["sh_link"])
            for s in elf.iter_sections()
        ]
        notes = [
            n["n_desc"]
            for s in elf.iter_sections()
            if isinstance(s, NoteSection)
            for n in s.iter_notes()
            if n["n_type"] == "NT_GNU_BUILD_ID"
        ]
        assert headers.elfclass == elf.elfclass
    got = [(s.name, s.addr, s.offset, s.size, s.link) for s in headers.sections]
    assert got == expected
    assert build_id == (notes[0] if notes else "")


def test_openssl_symbols_found() -> None:
    path = "/usr/lib/x86_64-linux-gnu/libssl.so.3"
    require_or_skip(Path(path).exists(), "no libssl.so.3 (Debian's libssl3, a bcc dependency)")
    facts = elf_facts(path, ("SSL_write", "SSL_read", "no_such_function"))
    assert facts is not None
    assert facts.symbols == ("SSL_write", "SSL_read")
    assert all(addr > 0 for _name, addr in facts.addresses)


@pytest.mark.parametrize("cut", [0, 3, 20, 64, 200])
def test_truncated_file_is_not_elf(tmp_path: Path, cut: int) -> None:
    blob = Path(sys.executable).read_bytes()
    damaged = tmp_path / "damaged"
    damaged.write_bytes(blob[:cut])
    assert elf_facts(str(damaged), ("SSL_write",)) is None


def test_section_headers_outside_the_file_are_refused(tmp_path: Path) -> None:
    blob = bytearray(Path(sys.executable).read_bytes()[:4096])
    damaged = tmp_path / "damaged"
    damaged.write_bytes(bytes(blob))
    data = map_file(str(damaged))
    try:
        with pytest.raises(ValueError):
            read_headers(data)
    finally:
        data.close()


@pytest.mark.parametrize("path", _FILES)
def test_load_segments_match_pyelftools(path: str) -> None:
    data = map_file(path)
    try:
        got = load_segments(data)
    finally:
        data.close()
    with open(path, "rb") as handle:
        expected = tuple(
            (s["p_vaddr"], s["p_memsz"], s["p_offset"])
            for s in ELFFile(handle).iter_segments()
            if s["p_type"] == "PT_LOAD"
        )
    assert got == expected
    assert len(got) >= 2  # text and data at least


def test_load_segments_of_a_32_bit_file() -> None:
    # Elf32_Phdr orders its fields differently (p_flags sixth): a hand-made header.
    ehdr = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    ehdr += struct.pack("<HHIIIIIHHHHHH", 3, 3, 1, 0, 52, 0, 0, 52, 32, 2, 40, 0, 0)
    note = struct.pack("<IIIIIIII", 4, 0x100, 0x1100, 0x1100, 0x20, 0x20, 4, 4)
    load = struct.pack("<IIIIIIII", 1, 0x1000, 0x8049000, 0x8049000, 0x200, 0x300, 5, 0x1000)
    assert load_segments(ehdr + note + load) == ((0x8049000, 0x300, 0x1000),)


@pytest.mark.parametrize("cut", [0, 3, 20, 70])
def test_load_segments_of_a_truncated_file_raise(cut: int) -> None:
    with pytest.raises(ValueError):
        load_segments(Path(sys.executable).read_bytes()[:cut])
