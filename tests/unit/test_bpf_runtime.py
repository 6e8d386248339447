"""The BPF runtime's pure parts: compiled objects, their checks and cache, typed maps'
ctypes, the program-kind tables, and uprobe offsets (against bcc's own resolver)."""

from __future__ import annotations

import base64
import ctypes
import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from lumen_sniff.capture.bpf.elf import elf_facts
from lumen_sniff.capture.bpf.loader import SOURCE_PATH
from lumen_sniff.capture.bpf.program import PROGRAM_KINDS
from lumen_sniff.capture.bpf.runtime.cache import CompileJob, CompileRequest, cache_key
from lumen_sniff.capture.bpf.runtime.ctypedesc import ctype_of
from lumen_sniff.capture.bpf.runtime.obj import parse_object
from lumen_sniff.capture.bpf.runtime.uprobes import file_offset
from lumen_sniff.capture.bpf.sockets import SOCKET_PROGRAMS, SOCKETS_SOURCE_PATH
from tests.conftest import require_or_skip

_LD_MAP = struct.pack("<BBhi", 0x18, 0x10 | 1, 0, 0) + struct.pack("<BBhi", 0, 0, 0, 0)
_EXIT = struct.pack("<BBhi", 0x95, 0, 0, 0)


def _object(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "format": 1,
        "license": "GPL",
        "kern_version": 0,
        "maps": [
            {
                "name": "counts",
                "type": 6,
                "key_size": 4,
                "value_size": 16,
                "max_entries": 3,
                "flags": 0,
                "key_desc": '"int"',
                "value_desc": '["d", [["records","unsigned long long"], '
                '["bytes","unsigned long long"]], "struct_packed"]',
            }
        ],
        "programs": [
            {
                "name": "prog",
                "insns": base64.b64encode(_LD_MAP + _EXIT).decode(),
                "relocs": [[0, 0]],
            }
        ],
    }
    obj.update(over)
    return obj


def test_a_well_formed_object_parses_and_relocates_map_loads() -> None:
    obj = parse_object(json.dumps(_object()))
    code = obj.program("prog").relocated([42])
    assert struct.unpack_from("<BBhi", code, 0) == (0x18, 0x11, 0, 42)
    assert code[8:] == (_LD_MAP + _EXIT)[8:]


@pytest.mark.parametrize(
    "broken",
    [
        {"format": 2},
        {"maps": "x"},
        {"programs": []},
        {"programs": [{"name": "p", "insns": "!!", "relocs": []}]},
        {"programs": [{"name": "p", "insns": base64.b64encode(b"123").decode(), "relocs": []}]},
        # A relocation that points at an instruction that is not a map load.
        {
            "programs": [
                {"name": "p", "insns": base64.b64encode(_EXIT).decode(), "relocs": [[0, 0]]}
            ]
        },
        # A relocation to a map that does not exist.
        {
            "programs": [
                {"name": "p", "insns": base64.b64encode(_LD_MAP).decode(), "relocs": [[0, 5]]}
            ]
        },
    ],
)
def test_a_malformed_object_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_object(json.dumps(_object(**broken)))
    with pytest.raises(ValueError):
        parse_object(b"\x00not json")


def test_bcc_type_descriptions_become_ctypes_with_named_fields() -> None:
    drop = ctype_of(
        '["lumen_drop", [["records","unsigned long long"], '
        '["bytes","unsigned long long"] ], "struct_packed"]'
    )
    assert ctypes.sizeof(drop) == 16
    assert drop(records=3, bytes=4).bytes == 4
    nested = ctype_of(
        '["s", [["hdr",["h", [["a","unsigned int"], ["c","char", [16]]], "struct_packed"]],'
        ' ["data","unsigned char", [8]]], "struct_packed"]'
    )
    assert ctypes.sizeof(nested) == 4 + 16 + 8
    assert ctype_of('"unsigned int"') is ctypes.c_uint
    with pytest.raises(ValueError):
        ctype_of('"no such type"')


def _cached_request(tmp_path: Path) -> tuple[CompileRequest, Path]:
    request = CompileRequest(name="unit", text="int f(void *ctx) { return 0; }", cflags=())
    return request, tmp_path / f"unit-{cache_key(request)[:40]}.json"


def test_a_cached_object_is_used_without_compiling(tmp_path: Path) -> None:
    request, path = _cached_request(tmp_path)
    path.write_text(json.dumps(_object()))
    path.chmod(0o600)
    job = CompileJob(request, tmp_path)
    assert job.cached
    assert job.result().program("prog").relocs == ((0, 0),)


def test_a_verdict_is_kept_with_its_object_and_trusted_like_it(tmp_path: Path) -> None:
    request, path = _cached_request(tmp_path)
    path.write_text(json.dumps(_object()))
    path.chmod(0o600)
    job = CompileJob(request, tmp_path)
    assert not job.verdict("accepted")
    job.record("accepted")
    marker = path.with_suffix(".accepted")
    assert marker.exists() and marker.stat().st_mode & 0o777 == 0o600
    assert CompileJob(request, tmp_path).verdict("accepted")  # a later start sees it
    marker.chmod(0o666)  # writable by others: not ours to trust
    assert not CompileJob(request, tmp_path).verdict("accepted")
    assert marker.stem == path.stem  # one object's verdict: another key, another marker


def test_a_foreign_or_corrupt_cache_entry_is_not_trusted(tmp_path: Path) -> None:
    from lumen_sniff.capture.bpf.runtime.cache import _read_trusted

    _, path = _cached_request(tmp_path)
    path.write_text(json.dumps(_object()))
    path.chmod(0o666)  # writable by others: someone else's object
    assert _read_trusted(path) is None
    path.chmod(0o600)
    assert _read_trusted(path) is not None
    path.write_text('{"format": 1, "maps": []')
    assert _read_trusted(path) is None


def test_the_cache_key_follows_text_cflags_and_headers(tmp_path: Path) -> None:
    (tmp_path / "x.h").write_text("#define A 1\n")
    base = CompileRequest(name="k", text="t", cflags=(f"-I{tmp_path}",))
    key = cache_key(base)
    assert cache_key(CompileRequest(name="k", text="t2", cflags=base.cflags)) != key
    assert cache_key(CompileRequest(name="k", text="t", cflags=(*base.cflags, "-DX=1"))) != key
    (tmp_path / "x.h").write_text("#define A 2\n")
    assert cache_key(base) != key


@pytest.mark.parametrize(
    ("kinds", "source"), [(PROGRAM_KINDS, SOURCE_PATH), (SOCKET_PROGRAMS, SOCKETS_SOURCE_PATH)]
)
def test_every_tracepoint_probe_has_a_row(kinds: dict[str, Any], source: Path) -> None:
    probes = re.findall(r"TRACEPOINT_PROBE\((\w+),\s*(\w+)\)", source.read_text())
    assert probes
    rows = {name: kind.tracepoint for name, kind in kinds.items() if kind.tracepoint}
    assert rows == {f"tracepoint__{c}__{e}": f"{c}:{e}" for c, e in probes}


class _BccSymbol(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("demangle_name", ctypes.c_char_p),
        ("module", ctypes.c_void_p),
        ("offset", ctypes.c_ulonglong),
    )


def _bcc_offset(path: str, sym: str, addr: int = 0) -> int:
    lib = ctypes.CDLL("libbcc_bpf.so.0")
    lib.bcc_resolve_symname.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulonglong,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.POINTER(_BccSymbol),
    ]
    out = _BccSymbol()
    ret = lib.bcc_resolve_symname(
        path.encode(), sym.encode() if sym else None, addr, 0, None, ctypes.byref(out)
    )
    assert ret == 0, (path, sym)
    return int(out.offset)


def test_uprobe_offsets_equal_what_bcc_resolved() -> None:
    # The OpenSSL/GnuTLS rows attach by symbol; the static rows by address. bcc's
    # resolver (in its LLVM-free libbcc_bpf) was what attached them before.
    from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES

    try:
        ctypes.CDLL("libbcc_bpf.so.0")
    except OSError as exc:
        require_or_skip(False, f"libbcc_bpf missing: {exc}")
    checked = 0
    for library in TLS_LIBRARIES:
        for pattern in library.system_libraries:
            for path in sorted(Path("/").glob(pattern.lstrip("/"))):
                for probe in library.probes:
                    if probe.sym:
                        assert file_offset(str(path), sym=probe.sym) == _bcc_offset(
                            str(path), probe.sym
                        ), (path, probe.sym)
                        checked += 1
    node = "/usr/bin/node"  # a large executable whose text is not at file offset = vaddr
    if os.path.exists(node):
        facts = elf_facts(node, ("SSL_write", "SSL_read"))
        assert facts is not None
        for sym, vaddr in facts.addresses:
            assert file_offset(node, sym=sym) == _bcc_offset(node, sym)
            assert file_offset(node, addr=vaddr) == _bcc_offset(node, "", vaddr)
            checked += 1
    assert checked
