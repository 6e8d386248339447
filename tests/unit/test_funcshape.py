"""Function-entry verification on hand-assembled code (no real binary needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lumen_sniff.capture.bpf.boringssl import NotLocated, _ordered, _Site, locate
from lumen_sniff.capture.bpf.elf import elf_facts
from lumen_sniff.capture.bpf.funcshape import _reaches, decode
from lumen_sniff.capture.bpf.libraries import TLS_SYMBOLS
from lumen_sniff.capture.bpf.libraries.boringssl_static import BORINGSSL_STATIC
from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS

PROLOGUE = bytes.fromhex("554889e5")  # push rbp; mov rbp, rsp
# sub rsp, 0x10; mov ecx, imm32; mov edi, 0x10; leave; ret
BODY = bytes.fromhex("4883ec10b97f7dd400bf10000000c9c3")
PAD = b"\xcc" * 4


def test_decode_reads_instructions() -> None:
    insns = decode(PROLOGUE + BODY, 0x1000)
    assert [i.mnemonic for i in insns] == ["push", "mov", "sub", "mov", "mov", "leave", "ret"]
    assert insns[3].op_str == "ecx, 0xd47d7f"


def test_reaches_target_on_instruction_boundary() -> None:
    code = PROLOGUE + BODY
    assert _reaches(code, 0x1000, 0x1000 + 8)  # the mov ecx
    assert not _reaches(code, 0x1000, 0x1000 + 9)  # inside the mov ecx


def test_refuses_through_padding_or_unpadded_function_start() -> None:
    # ret, then int3 padding: the target lies in another function.
    code = PROLOGUE + b"\xc3" + b"\xcc" * 11 + PROLOGUE + BODY
    assert not _reaches(code, 0x1000, 0x1010 + 8)
    # ret, nop to the next 16 bytes, then a prologue: an unpadded function start.
    code = PROLOGUE + b"\xc3" + b"\x90" * 11 + PROLOGUE + BODY
    assert not _reaches(code, 0x1000, 0x1010 + 8)


def _sites(*pairs: tuple[int, int]) -> list[_Site]:
    return [_Site(vaddr=0, reason=r, line=line) for r, line in pairs]


def test_reason_order_names_ssl_write() -> None:
    write = _sites((66, 955), (226, 960), (215, 975), (111, 981))
    assert _ordered(write, (226, 215, 111)) == (960, 981)
    # Same reasons, wrong order or too far apart: not SSL_write.
    assert _ordered(_sites((215, 960), (226, 975), (111, 981)), (226, 215, 111)) is None
    assert _ordered(_sites((226, 100), (215, 975), (111, 981)), (226, 215, 111)) is None


@pytest.mark.parametrize("path", ["/bin/true", sys.executable])
def test_plain_executable_is_not_static_boringssl(path: str) -> None:
    facts = elf_facts(path, TLS_SYMBOLS)
    assert facts is not None and facts.path == path
    assert BORINGSSL_STATIC.judge(BORINGSSL_STATIC, facts) == NO_TLS_SYMBOLS


def test_locate_refuses_a_file_without_boringssl(tmp_path: Path) -> None:
    found = locate("/bin/true")
    assert isinstance(found, NotLocated) and "no ssl_lib.cc path" in found.reason
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert isinstance(locate(str(junk)), NotLocated)
