"""Go's function table, build info and the disassembly check, on synthetic bytes."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumen_sniff.capture.bpf.golang.buildinfo import BUILDINFO_MAGIC, go_version, version_tuple
from lumen_sniff.capture.bpf.golang.locate import GoFunction, check_function
from lumen_sniff.capture.bpf.golang.pclntab import GoFunc, PclntabError, find_header, parse

_FUNCS = (
    ("runtime.main", 0x1000, 0x1040),
    ("crypto/tls.(*Conn).Write", 0x1040, 0x1100),
    ("crypto/tls.(*Conn).Read", 0x1100, 0x1180),
)
_TEXT = 0x401000


def _table(magic: int, funcs: tuple[tuple[str, int, int], ...] = _FUNCS) -> bytes:
    """A pclntab with ``funcs`` (name, start, end as offsets from the text start)."""
    old = magic == 0xFFFFFFFA
    names = b""
    name_offs = []
    for name, _start, _end in funcs:
        name_offs.append(len(names))
        names += name.encode() + b"\0"
    words = 7 if old else 8
    header_len = 8 + words * 8
    funcname_off = header_len
    pcln_off = funcname_off + len(names) + (-len(names)) % 8
    row = 16 if old else 8
    ftab_len = (len(funcs) + 1) * row
    funcs_blob = b""
    ftab = b""
    for (_name, start, _end), nameoff in zip(funcs, name_offs, strict=True):
        funcoff = ftab_len + len(funcs_blob)
        if old:
            ftab += struct.pack("<QQ", _TEXT + start, funcoff)
            funcs_blob += struct.pack("<Qi", _TEXT + start, nameoff) + b"\0" * 4
        else:
            ftab += struct.pack("<II", start, funcoff)
            funcs_blob += struct.pack("<Ii", start, nameoff)
    end = funcs[-1][2]
    ftab += struct.pack("<QQ", _TEXT + end, 0) if old else struct.pack("<II", end, 0)
    if old:
        fields = [len(funcs), 1, funcname_off, 0, 0, 0, pcln_off]
    else:
        fields = [len(funcs), 1, _TEXT, funcname_off, 0, 0, 0, pcln_off]
    header = struct.pack("<IBBBB", magic, 0, 0, 1, 8) + struct.pack(f"<{words}Q", *fields)
    pad = b"\0" * (pcln_off - funcname_off - len(names))
    return header + names + pad + ftab + funcs_blob


@pytest.mark.parametrize(
    "magic", [0xFFFFFFFA, 0xFFFFFFF0, 0xFFFFFFF1], ids=["1.16", "1.18", "1.20"]
)
def test_every_layout_finds_functions_by_name(magic: int) -> None:
    table = parse(_table(magic))
    found = table.find(("crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read", "absent"))
    assert found == {
        "crypto/tls.(*Conn).Write": GoFunc(
            name="crypto/tls.(*Conn).Write", entry=_TEXT + 0x1040, end=_TEXT + 0x1100
        ),
        "crypto/tls.(*Conn).Read": GoFunc(
            name="crypto/tls.(*Conn).Read", entry=_TEXT + 0x1100, end=_TEXT + 0x1180
        ),
    }
    # The first name sits at offset 0 of the name table, with no NUL before it.
    assert table.find(("runtime.main",))["runtime.main"].entry == _TEXT + 0x1000


def test_a_name_that_is_a_suffix_of_another_is_not_confused() -> None:
    funcs = (("x.(*Conn).Write", 0x0, 0x10), ("crypto/tls.(*Conn).Write", 0x10, 0x20))
    found = parse(_table(0xFFFFFFF0, funcs)).find(("crypto/tls.(*Conn).Write",))
    assert found["crypto/tls.(*Conn).Write"].entry == _TEXT + 0x10


def test_pie_header_without_text_start_uses_the_text_section() -> None:
    data = bytearray(_table(0xFFFFFFF1))
    struct.pack_into("<Q", data, 8 + 2 * 8, 0)  # textStart left to a relocation
    table = parse(bytes(data), text_addr=0x500000)
    assert table.find(("runtime.main",))["runtime.main"].entry == 0x500000 + 0x1000


@pytest.mark.parametrize(
    "data",
    [
        b"",
        struct.pack("<IBBBB", 0xFFFFFFFB, 0, 0, 1, 8) + b"\0" * 64,  # Go 1.2-1.15
        struct.pack("<IBBBB", 0xFFFFFFF1, 1, 0, 1, 8) + b"\0" * 64,  # bad padding
        struct.pack("<IBBBB", 0xFFFFFFF1, 0, 0, 1, 8) + b"\0" * 64,  # offsets all zero
    ],
)
def test_unknown_or_damaged_headers_are_refused(data: bytes) -> None:
    with pytest.raises(PclntabError):
        parse(data)


def test_a_truncated_function_table_raises_pclntab_error() -> None:
    data = _table(0xFFFFFFF0)
    table = parse(data)
    with pytest.raises(PclntabError):
        type(table)(**{**{f: getattr(table, f) for f in table.__slots__}, "data": data[:-6]}).find(
            ("crypto/tls.(*Conn).Read",)
        )


def test_header_is_found_in_a_blob_without_section_headers() -> None:
    table = _table(0xFFFFFFF0)
    blob = b"\xf0\xff\xff\xff junk" + b"\0" * 7 + table  # a false start, then the real one
    assert find_header(blob) == 16
    assert find_header(b"\0" * 100) == -1


@given(st.binary(max_size=300))
def test_parse_never_raises_anything_but_pclntab_error(data: bytes) -> None:
    with contextlib.suppress(PclntabError):
        parse(struct.pack("<IBBBB", 0xFFFFFFF0, 0, 0, 1, 8) + data).find(("a", "b"))


def _buildinfo_inline(version: bytes) -> bytes:
    head = BUILDINFO_MAGIC + bytes([8, 0x2]) + b"\0" * 16
    return head + bytes([len(version)]) + version + b"\x00"


def test_go_version_inline_and_by_pointer() -> None:
    assert go_version(_buildinfo_inline(b"go1.19.8"), lambda a, n: None) == "go1.19.8"
    memory = {0x5000: struct.pack("<QQ", 0x6000, 8), 0x6000: b"go1.17.2"}
    blob = BUILDINFO_MAGIC + bytes([8, 0]) + struct.pack("<QQ", 0x5000, 0) + b"\0" * 8
    assert go_version(blob, lambda addr, n: memory.get(addr)) == "go1.17.2"
    assert go_version(b"not buildinfo" * 4, lambda a, n: None) is None
    assert go_version(_buildinfo_inline(b"\xff\xfe"), lambda a, n: None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("go1.19.8", (1, 19)), ("devel go1.23-abc123", (1, 23)), ("go1.9", (1, 9)), ("x", None)],
)
def test_version_tuple(text: str, expected: tuple[int, int] | None) -> None:
    assert version_tuple(text) == expected


# A Go ABIInternal function: stack check on [r14+0x10], body with two RETs,
# the morestack call and the jump back to the entry; INT3 padding after it.
_ENTRY = 0x401000
_STACK_CHECK = bytes.fromhex("493b6610")  # cmp rsp, qword ptr [r14 + 0x10]
_JBE = bytes.fromhex("7614")  # jbe +0x14 (to the morestack call)
_BODY = bytes.fromhex("4883ec18" "4885c0" "7405" "4883c418" "c3" "4883c418" "c3")
_MORESTACK = bytes.fromhex("e800000000")  # call (morestack)


def _go_function(*, check: bytes = _STACK_CHECK, tail: bytes | None = None) -> bytes:
    code = check + _JBE + _BODY + _MORESTACK
    jmp_back = b"\xe9" + struct.pack("<i", _ENTRY - (_ENTRY + len(code) + 5))
    return code + (jmp_back if tail is None else tail) + b"\xcc" * 7


def test_check_function_finds_every_ret() -> None:
    code = _go_function()
    func = GoFunc(name="f", entry=_ENTRY, end=_ENTRY + len(code))
    checked = check_function(code, func)
    assert isinstance(checked, GoFunction)
    rets = [i for i in range(len(code)) if code[i] == 0xC3]
    assert checked.returns == tuple(_ENTRY + i for i in rets)
    assert len(checked.returns) == 2


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        # Stack ABI (Go <= 1.16): g from fs:[-8], no r14.
        (_go_function(check=bytes.fromhex("64488b0c25f8ffffff")), "stack check"),
        (_go_function(tail=b"\x90"), "morestack jump"),
        (_go_function(tail=b"\x06\x06"), "do not decode"),
        (b"\xcc" * 16, "implausible size"),
    ],
)
def test_check_function_refuses_unexpected_shapes(code: bytes, reason: str) -> None:
    func = GoFunc(name="f", entry=_ENTRY, end=_ENTRY + len(code))
    result = check_function(code, func)
    assert isinstance(result, str) and reason in result, result


@pytest.mark.parametrize("magic", [0xFFFFFFFA, 0xFFFFFFF0])
def test_fast_lookup_agrees_with_the_linear_scan(magic: int) -> None:
    table = parse(_table(magic))
    names = {0: "runtime.main", len("runtime.main") + 1: "crypto/tls.(*Conn).Write"}
    assert table._find_fast(names) == table._find_linear(names)
    assert len(table._find_fast(names)) == 2


def test_go_row_judges_only_go_files_and_reports_why_it_refuses(tmp_path: Path) -> None:
    from lumen_sniff.capture.bpf.elf import ElfFacts
    from lumen_sniff.capture.bpf.libraries.golang import GOLANG
    from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS

    def facts(path: str, *, is_go: bool) -> ElfFacts:
        return ElfFacts(symbols=(), addresses=(), sections=frozenset(), is_go=is_go, path=path)

    assert GOLANG.judge(GOLANG, facts("/bin/true", is_go=False)) == NO_TLS_SYMBOLS
    junk = tmp_path / "not-really-go"
    junk.write_bytes(b"\x7fELF" + b"\0" * 60)
    reason = GOLANG.judge(GOLANG, facts(str(junk), is_go=True))
    assert reason.startswith("go: ") and "unreadable" in reason, reason
