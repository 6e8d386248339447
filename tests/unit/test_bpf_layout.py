"""The ctypes mirror matches bpf/lumen.h as a C compiler lays it out; the probe table
names functions that exist in the C program; settings reach it as -D defines."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES
from lumen_sniff.capture.bpf.loader import SOURCE_PATH, BpfCapture
from lumen_sniff.capture.bpf.ringrecords import (
    DROP_REASONS,
    HEADER_PATH,
    PATH_ANYWHERE,
    PATH_AT_START,
    PATH_BYTES,
    ConnStruct,
    DropStruct,
    Kind,
    PathKeyStruct,
    RecordHeader,
)
from lumen_sniff.capture.bpf.runtime.compiler import CALLBACK_PREFIX
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.capture.bpf.sockrecords import (
    HELLO_BYTES,
    SOCK_COUNTERS,
    SockEventStruct,
    SockKind,
    SockOwnerStruct,
    TupleStruct,
)
from lumen_sniff.capture.bpf.tlslib import ArgConvention, ProbeKind
from lumen_sniff.errors import ConfigError
from lumen_sniff.model import Direction
from tests.conftest import require_or_skip

_STRUCTS = {
    "lumen_record": RecordHeader,
    "lumen_conn": ConnStruct,
    "lumen_drop": DropStruct,
    "lumen_path_key": PathKeyStruct,
    "lumen_tuple": TupleStruct,
    "lumen_sock_owner": SockOwnerStruct,
    "lumen_sock_event": SockEventStruct,
}


def _c_layout(tmp_path: Path) -> dict[str, int]:
    """Compile a program that prints sizeof/offsetof of every mirrored field."""
    lines = []
    for c_name, mirror in _STRUCTS.items():
        lines.append(f'printf("{c_name}.__size__ %zu\\n", sizeof(struct {c_name}));')
        for field_name, *_ in mirror._fields_:
            lines.append(
                f'printf("{c_name}.{field_name} %zu\\n", offsetof(struct {c_name}, {field_name}));'
            )
    consts = [
        "LUMEN_COMM_LEN",
        "LUMEN_KIND_DATA",
        "LUMEN_KIND_CLOSE",
        "LUMEN_KIND_EXEC",
        "LUMEN_KIND_MMAP",
        "LUMEN_KIND_EXIT",
        "LUMEN_DIR_EGRESS",
        "LUMEN_DIR_INGRESS",
        "LUMEN_DROP_RINGBUF_FULL",
        "LUMEN_DROP_CAP_EXCEEDED",
        "LUMEN_DROP_READ_FAILED",
        "LUMEN_DROP_BUDGET",
        "LUMEN_DROP_REASONS",
        "LUMEN_PATH_BYTES",
        "LUMEN_PATH_AT_START",
        "LUMEN_PATH_ANYWHERE",
        "LUMEN_HELLO_BYTES",
        "LUMEN_SOCK_HELLO",
        "LUMEN_SOCK_CLOSE",
        "LUMEN_SOCK_CONNECTS",
        "LUMEN_SOCK_HELLOS",
        "LUMEN_SOCK_NOT_TLS",
        "LUMEN_SOCK_RINGBUF_FULL",
        "LUMEN_SOCK_UNKNOWN",
        "LUMEN_SOCK_COUNTERS",
    ]
    lines += [f'printf("{c} %d\\n", (int){c});' for c in consts]
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n"
        f'#include "{HEADER_PATH}"\n'
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def test_ctypes_mirror_matches_compiled_header(tmp_path: Path) -> None:
    require_or_skip(shutil.which("gcc") is not None, "gcc is needed to compile bpf/lumen.h")
    layout = _c_layout(tmp_path)
    for c_name, mirror in _STRUCTS.items():
        assert layout[f"{c_name}.__size__"] == ctypes.sizeof(mirror), c_name
        for field_name, *_ in mirror._fields_:
            offset = getattr(mirror, field_name).offset
            assert layout[f"{c_name}.{field_name}"] == offset, f"{c_name}.{field_name}"
    assert ctypes.sizeof(RecordHeader) == 80
    assert layout["LUMEN_COMM_LEN"] == 16
    assert [layout[f"LUMEN_KIND_{k.name}"] for k in Kind] == [k.value for k in Kind]
    assert layout["LUMEN_DIR_EGRESS"] == Direction.EGRESS
    assert layout["LUMEN_DIR_INGRESS"] == Direction.INGRESS
    assert layout["LUMEN_DROP_REASONS"] == len(DROP_REASONS)
    for index, reason in enumerate(DROP_REASONS):
        assert layout[f"LUMEN_DROP_{reason.upper()}"] == index
    assert layout["LUMEN_PATH_BYTES"] == PATH_BYTES
    assert (layout["LUMEN_PATH_AT_START"], layout["LUMEN_PATH_ANYWHERE"]) == (
        PATH_AT_START,
        PATH_ANYWHERE,
    )
    assert layout["LUMEN_HELLO_BYTES"] == HELLO_BYTES
    assert [layout[f"LUMEN_SOCK_{k.name}"] for k in SockKind] == [k.value for k in SockKind]
    assert layout["LUMEN_SOCK_COUNTERS"] == len(SOCK_COUNTERS)
    c_names = ["CONNECTS", "HELLOS", "NOT_TLS", "RINGBUF_FULL", "UNKNOWN"]
    assert [layout[f"LUMEN_SOCK_{n}"] for n in c_names] == list(range(len(SOCK_COUNTERS)))


def test_every_probe_function_exists_in_the_c_program() -> None:
    source = SOURCE_PATH.read_text()
    defined = set(re.findall(r"^int (\w+)\(struct pt_regs \*ctx\)", source, re.MULTILINE))
    defined -= {n for n in defined if n.startswith(CALLBACK_PREFIX)}  # bpf_loop callbacks
    probes = [p for library in TLS_LIBRARIES for p in library.probes]
    assert {p.fn_name for p in probes} == defined
    for probe in probes:
        # Entry probes are named enter, return probes leave: a swapped row would
        # read return values from argument registers.
        assert ("_leave_" in probe.fn_name) == (probe.kind is ProbeKind.RETURN), probe
    for library in TLS_LIBRARIES:
        if library.args is ArgConvention.GO_REGABI:
            # Never a uretprobe on Go code: it rewrites return addresses on stacks Go moves.
            assert all(p.kind is not ProbeKind.RETURN for p in library.probes), library.name


@pytest.mark.parametrize("library", TLS_LIBRARIES, ids=lambda lib: lib.name)
def test_every_probe_names_a_symbol_its_row_lists(library) -> None:  # type: ignore[no-untyped-def]
    # A probe whose function is missing from ``symbols`` is never looked up in
    # the file, so it would silently never attach.
    for probe in library.probes:
        assert probe.sym in library.symbols, probe
    assert library.close in library.symbols
    assert any(p.sym == library.close and p.kind is ProbeKind.ENTRY for p in library.probes)
    for group in library.required:
        assert set(group) <= set(library.symbols), group
    assert len({lib.name for lib in TLS_LIBRARIES}) == len(TLS_LIBRARIES)


def test_settings_reach_the_program_as_defines_only() -> None:
    settings = BpfSettings(
        max_bytes_per_call=300_000, chunk_bytes=8192, ring_bytes=1 << 22, empty_probes=True
    )
    text, cflags = BpfCapture(settings).render_source()
    assert text == SOURCE_PATH.read_text()
    assert "-DLUMEN_CHUNK_BYTES=8192" in cflags
    assert "-DLUMEN_CAP_BYTES=300000" in cflags
    assert "-DLUMEN_MAX_CHUNKS=37" in cflags  # ceil(300000 / 8192)
    assert "-DLUMEN_RINGBUF_PAGES=1024" in cflags
    assert "-DLUMEN_EMPTY_PROBES=1" in cflags
    assert "-DLUMEN_BUDGET_BYTES=0" in cflags  # no path needles: the kernel judges nothing
    assert f"-I{HEADER_PATH.parent}" in cflags
    # Every define the loader passes is one the C program reads.
    for flag in cflags:
        if flag.startswith("-D"):
            name = flag[2:].split("=")[0]
            assert name in text or name in HEADER_PATH.read_text(), name


def test_the_budget_reaches_the_program_only_with_path_needles() -> None:
    judged = BpfSettings(budget_bytes=4096, llm_path_prefixes=("/v1/",))
    assert "-DLUMEN_BUDGET_BYTES=4096" in BpfCapture(judged).render_source()[1]
    off = BpfSettings(budget_bytes=0, llm_path_prefixes=("/v1/",))
    assert "-DLUMEN_BUDGET_BYTES=0" in BpfCapture(off).render_source()[1]


@pytest.mark.parametrize(
    "bad",
    [
        {"budget_bytes": -1},
        {"budget_bytes": 1 << 31},
        {"chunk_bytes": 32768},
        {"max_bytes_per_call": 0},
        {"max_bytes_per_call": 257 * 16384},
        {"ring_bytes": 3 << 20},
        {"queue_size": 0},
    ],
)
def test_settings_out_of_range_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        BpfSettings(**bad).validate()
