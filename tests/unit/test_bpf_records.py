"""Pure parts of the eBPF capture: record decoding, cgroup names, maps, ELF symbols, discovery."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lumen_sniff.capture.bpf.conns import OpenConns
from lumen_sniff.capture.bpf.discovery import Discovery, Rescans, parse_maps
from lumen_sniff.capture.bpf.elf import ElfFacts, elf_facts
from lumen_sniff.capture.bpf.libraries import TLS_SYMBOLS
from lumen_sniff.capture.bpf.libraries.openssl import OPENSSL
from lumen_sniff.capture.bpf.procinfo import ProcCache, container_id, systemd_unit
from lumen_sniff.capture.bpf.ringrecords import HEADER_SIZE, Kind, RecordHeader, decode, to_chunk
from lumen_sniff.capture.bpf.tlslib import (
    ArgConvention,
    AttachPoint,
    Probe,
    ProbeKind,
    TlsLibrary,
    by_symbol,
)
from lumen_sniff.model import ConnKey, Direction, ProcessInfo
from tests.conftest import require_or_skip

DOCKER_ID = "3f" * 32


def _raw(
    *, kind: int = 0, data: bytes = b"", direction: int = 1, data_len: int | None = None
) -> bytes:
    head = RecordHeader(
        ts_ns=1_000,
        ssl=0x7F00DEADBEEF,
        offset=4096,
        lost_bytes=7,
        cgroup_id=99,
        pid=4242,
        tid=4243,
        uid=1000,
        data_len=len(data) if data_len is None else data_len,
        kind=kind,
        direction=direction,
        comm=b"python3",
    )
    return bytes(head) + data


def test_decode_data_record_exact_fields() -> None:
    record = decode(_raw(data=b"HTTP/1.1 200 OK\r\n"))
    assert record is not None
    assert record.kind is Kind.DATA
    assert (record.pid, record.tid, record.uid, record.cgroup_id) == (4242, 4243, 1000, 99)
    assert (record.ssl, record.offset, record.lost_bytes) == (0x7F00DEADBEEF, 4096, 7)
    assert record.direction is Direction.INGRESS
    assert record.comm == "python3"
    assert record.data == b"HTTP/1.1 200 OK\r\n"


def test_decode_ignores_bytes_past_data_len() -> None:
    # The ring buffer rounds records up to 8 bytes; padding is not payload.
    record = decode(_raw(data=b"abc\0\0\0\0\0", data_len=3))
    assert record is not None and record.data == b"abc"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(HEADER_SIZE - 1),
        _raw(data=b"ab", data_len=3),  # says more than it carries
        _raw(kind=9),
        _raw(direction=2),
    ],
)
def test_decode_refuses_malformed_records(raw: bytes) -> None:
    assert decode(raw) is None


def test_to_chunk_converts_clock_and_keys_by_pid_and_ssl() -> None:
    record = decode(_raw(data=b"xyz"))
    assert record is not None
    process = ProcessInfo(pid=4242, comm="python3")
    chunk = to_chunk(record, wall_offset_ns=1_700_000_000_000_000_000, process=process)
    assert chunk.conn == ConnKey(source="bpf", pid=4242, handle=0x7F00DEADBEEF)
    assert chunk.ts_ns == 1_700_000_000_000_001_000
    assert (chunk.offset, chunk.lost_bytes, chunk.data, chunk.closed) == (4096, 7, b"xyz", False)
    assert chunk.direction is Direction.INGRESS
    assert chunk.process is process
    closed = decode(_raw(kind=Kind.CLOSE, direction=0))
    assert closed is not None
    assert to_chunk(closed, wall_offset_ns=0, process=None).closed is True


@pytest.mark.parametrize(
    ("path", "container", "unit"),
    [
        (f"/system.slice/docker-{DOCKER_ID}.scope", DOCKER_ID, None),
        (
            f"/kubepods.slice/kubepods-burstable.slice/cri-containerd-{DOCKER_ID}.scope",
            DOCKER_ID,
            None,
        ),
        (f"/machine.slice/libpod-{DOCKER_ID}.scope/container", DOCKER_ID, None),
        (f"/docker/{DOCKER_ID}", DOCKER_ID, None),
        ("/system.slice/nginx.service", None, "nginx.service"),
        ("/system.slice/system-getty.slice/getty@tty1.service", None, "getty@tty1.service"),
        ("/user.slice/user-0.slice/session-3.scope", None, "session-3.scope"),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app.scope",
            None,
            "user@1000.service",
        ),
        ("/", None, None),
        ("", None, None),
    ],
)
def test_cgroup_path_names_container_and_unit(
    path: str, container: str | None, unit: str | None
) -> None:
    assert container_id(path) == container
    assert systemd_unit(path) == unit


def test_proc_cache_reads_once_and_forgets_on_exec(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "comm").write_text("node\n")
    (proc / "77" / "cgroup").write_text(f"0::/system.slice/docker-{DOCKER_ID}.scope\n")
    (proc / "77" / "cmdline").write_bytes(b"node\0server.js\0")
    os.symlink("/usr/bin/node", proc / "77" / "exe")
    cache = ProcCache(max_entries=2, proc=proc, host_root=tmp_path)
    info = cache.lookup(pid=77, tid=78, uid=5, cgroup_id=6)
    assert info == ProcessInfo(
        pid=77,
        tid=78,
        comm="node",
        uid=5,
        cgroup_id=6,
        exe="/usr/bin/node",
        container=DOCKER_ID,
        service=DOCKER_ID[:12],  # the container names it, before the command line
    )
    (proc / "78").mkdir()
    (proc / "78" / "cmdline").write_bytes(b"/usr/bin/python3\0-m\0app.worker\0")
    assert cache.lookup(pid=78).service == "app.worker"
    (proc / "77" / "comm").write_text("changed\n")
    assert cache.lookup(pid=77).comm == "node"  # cached
    assert cache.lookup(pid=77, comm="kernel-says").comm == "kernel-says"  # kernel's comm wins
    cache.forget(77)
    assert cache.lookup(pid=77).comm == "changed"
    cache.lookup(pid=1000)
    cache.lookup(pid=1001)
    assert len(cache) == 2  # bounded


MAPS = f"""\
55d0c0a00000-55d0c0a28000 r--p 00000000 fe:00 260811                     /usr/bin/python3.11
7f1d2c000000-7f1d2c021000 rw-p 00000000 00:00 0
7fcd7eba9000-7fcd7ebc8000 r--p 00000000 fe:00 339900 /usr/lib/x86_64-linux-gnu/libssl.so.3
7fcd7ebc8000-7fcd7ec23000 r-xp 0001f000 fe:00 339900 /usr/lib/x86_64-linux-gnu/libssl.so.3
7fcd7ec23000-7fcd7ec24000 r-xp 00000000 fe:00 12                         /tmp/old.so (deleted)
7ffd1a2b3000-7ffd1a2d4000 rw-p 00000000 00:00 0                          [stack]
7f00{DOCKER_ID[:8]}-7f01{DOCKER_ID[:8]} r--s 00000000 00:05 3            /memfd:x (deleted)
"""


def test_parse_maps_keeps_named_files() -> None:
    maps = parse_maps(MAPS)
    assert [(m.dev, m.inode, m.path, m.executable) for m in maps] == [
        ("fe:00", 260811, "/usr/bin/python3.11", False),
        ("fe:00", 339900, "/usr/lib/x86_64-linux-gnu/libssl.so.3", False),
        ("fe:00", 339900, "/usr/lib/x86_64-linux-gnu/libssl.so.3", True),
    ]


def _cc(tmp_path: Path, name: str, code: str, *flags: str) -> Path:
    src = tmp_path / f"{name}.c"
    src.write_text(code)
    out = tmp_path / name
    subprocess.run(["gcc", "-O0", "-o", str(out), str(src), *flags], check=True)
    return out


SSL_LIB = """
int SSL_write(void *s, const void *b, int n) { return n; }
int SSL_read(void *s, void *b, int n) { return 0; }
int SSL_free(void *s) { return 0; }
"""
IMPORTER = """
extern int SSL_write(void *s, const void *b, int n);
int main(void) { return SSL_write(0, 0, 0); }
"""
GO_LIKE = SSL_LIB + '__attribute__((section(".go.buildinfo"))) char go_info[16] = "go";\n'


@pytest.fixture
def elves(tmp_path: Path) -> dict[str, Path]:
    require_or_skip(shutil.which("gcc") is not None, "gcc is needed to build test ELF files")
    lib = _cc(tmp_path, "libssl.so.3", SSL_LIB, "-shared", "-fPIC")
    return {
        "lib": lib,
        "exe": _cc(
            tmp_path, "statically-tls", SSL_LIB + "int main(void) { return 0; }\n", "-rdynamic"
        ),
        "importer": _cc(tmp_path, "importer", IMPORTER, str(lib)),
        "go": _cc(tmp_path, "gobin", GO_LIKE + "int main(void) { return 0; }\n", "-rdynamic"),
        # Linked in, not exported: SSL_write and friends are only in .symtab.
        "static": _cc(tmp_path, "static-tls", SSL_LIB + "int main(void) { return 0; }\n"),
    }


def test_elf_facts_sees_defined_symbols_only(elves: dict[str, Path]) -> None:
    lib = elf_facts(str(elves["lib"]), TLS_SYMBOLS)
    assert (
        lib is not None and lib.symbols == ("SSL_write", "SSL_read", "SSL_free") and not lib.is_go
    )
    address = lib.address("SSL_write")
    assert address is not None and address > 0 and lib.address("SSL_read_ex") is None
    importer = elf_facts(str(elves["importer"]), TLS_SYMBOLS)
    assert importer is not None and importer.symbols == ()  # imports SSL_write, defines none
    go = elf_facts(str(elves["go"]), TLS_SYMBOLS)
    assert go is not None and go.is_go
    assert elf_facts(__file__, TLS_SYMBOLS) is None


def test_elf_facts_reads_symtab_too(elves: dict[str, Path]) -> None:
    static = elf_facts(str(elves["static"]), TLS_SYMBOLS)
    assert static is not None and static.symbols == ("SSL_write", "SSL_read", "SSL_free")
    assert ".symtab" in static.sections


def _fake_proc(tmp_path: Path, pid: int, exe: Path, libs: list[Path]) -> None:
    base = tmp_path / "proc" / str(pid)
    base.mkdir(parents=True)
    os.symlink(exe, base / "exe")
    lines = []
    for i, path in enumerate([exe, *libs]):
        st = os.stat(path)
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
        lines.append(f"{i:08x}-{i + 1:08x} r-xp 00000000 {dev} {st.st_ino}    {path}")
    (base / "maps").write_text("\n".join(lines) + "\n")


def test_discovery_hooks_each_file_once_and_skips_go(
    tmp_path: Path, elves: dict[str, Path]
) -> None:
    _fake_proc(tmp_path, 10, elves["importer"], [elves["lib"]])
    _fake_proc(tmp_path, 11, elves["importer"], [elves["lib"]])
    _fake_proc(tmp_path, 12, elves["exe"], [])
    _fake_proc(tmp_path, 13, elves["go"], [])
    _fake_proc(tmp_path, 14, elves["lib"], [])
    discovery = Discovery(proc=tmp_path / "proc", exclude_pids=(14,))
    assert discovery.scan_pid(14) == []  # the daemon itself
    first = {t.path: t for pid in (10, 11, 12, 13) for t in discovery.scan_pid(pid)}
    assert sorted(first) == sorted([str(elves["lib"]), str(elves["exe"])])
    assert first[str(elves["lib"])].kind == "library"
    assert first[str(elves["exe"])].kind == "executable"
    by_path = {t.path: t for t in discovery.files.values()}
    assert by_path[str(elves["lib"])].pids == {10, 11}
    assert by_path[str(elves["go"])].skipped == "go"
    assert by_path[str(elves["importer"])].skipped == "no_tls_symbols"
    assert first[str(elves["lib"])].library is OPENSSL
    assert discovery.scan_pid(10) == []  # already judged
    assert discovery.scan_pid(999) == []  # no such process
    discovery.forget_pid(10)
    assert by_path[str(elves["lib"])].pids == {11}


def _go_like_judge(library: TlsLibrary, facts: ElfFacts) -> str:
    return "" if facts.is_go and facts.address("SSL_write") is not None else "not_go"


def _by_address(library: TlsLibrary, path: str, facts: ElfFacts) -> tuple[AttachPoint, ...]:
    # What a Go or stripped-BoringSSL row does: attach at addresses it found
    # (here the symbol's own, plus made-up RET offsets), never a uretprobe.
    entry = facts.address("SSL_write")
    assert entry is not None
    return tuple(
        AttachPoint(path=path, sym="", addr=entry + offset, fn_name=fn, ret=False, label=label)
        for offset, fn, label in (
            (0, "lumen_enter_ssl_write", "SSL_write"),
            (7, "lumen_leave_ssl_write", "SSL_write:rets"),
        )
    )


_GO_LIKE = TlsLibrary(
    name="go-like",
    file_names=re.compile(r"$^"),
    system_libraries=(),
    system_executables=(),
    symbols=("SSL_write",),
    required=(("SSL_write",),),
    probes=(
        Probe(sym="SSL_write", fn_name="lumen_enter_ssl_write", kind=ProbeKind.ENTRY),
        Probe(sym="SSL_write", fn_name="lumen_leave_ssl_write", kind=ProbeKind.RET_OFFSETS),
    ),
    close="SSL_write",
    args=ArgConvention.GO_REGABI,
    judge=_go_like_judge,
    locate=_by_address,
)


def test_a_row_can_claim_files_and_attach_by_address(
    tmp_path: Path, elves: dict[str, Path]
) -> None:
    _fake_proc(tmp_path, 13, elves["go"], [elves["lib"]])
    discovery = Discovery(proc=tmp_path / "proc", libraries=(_GO_LIKE, OPENSSL))
    found = {t.path: t for t in discovery.scan_pid(13)}
    go, lib = found[str(elves["go"])], found[str(elves["lib"])]
    assert go.library is _GO_LIKE and lib.library is OPENSSL
    assert go.facts is not None and lib.facts is not None
    points = _GO_LIKE.locate(_GO_LIKE, go.path, go.facts)
    entry = go.facts.address("SSL_write")
    assert [(p.sym, p.addr, p.ret) for p in points] == [("", entry, False), ("", entry + 7, False)]
    # The default locator attaches by symbol, entry and return, where defined.
    labels = [p.label for p in by_symbol(OPENSSL, lib.path, lib.facts)]
    assert labels == [
        "SSL_write", "SSL_write:ret", "SSL_read", "SSL_read:ret", "SSL_free"
    ]  # fmt: skip


def test_rescans_come_due_in_order_and_collapse() -> None:
    rescans = Rescans()
    rescans.add(5, delays_s=(0.0, 0.05))
    rescans.add(5, delays_s=(0.0,))
    rescans.add(6, delays_s=(0.02,), forget=True)
    start = time.monotonic()
    assert rescans.next_due(timeout_s=1) == (5, False)
    assert rescans.next_due(timeout_s=1) == (6, True)
    assert time.monotonic() - start >= 0.02
    assert rescans.next_due(timeout_s=1) == (5, False)
    assert rescans.next_due(timeout_s=0.01) is None
    assert ctypes.sizeof(RecordHeader) == HEADER_SIZE


def test_open_conns_closes_what_an_exit_left_open() -> None:
    conns = OpenConns(max_conns=3)
    conns.advance(7, 0xA, Direction.EGRESS, 100)
    conns.advance(7, 0xA, Direction.INGRESS, 50)
    conns.advance(7, 0xB, Direction.EGRESS, 10)
    conns.advance(8, 0xA, Direction.EGRESS, 1)
    conns.close(7, 0xB)
    assert len(conns) == 2
    conns.advance(9, 0x1, Direction.INGRESS, 5)
    conns.advance(9, 0x2, Direction.INGRESS, 5)  # over the bound: (7, 0xA) is the oldest
    assert len(conns) == 3
    assert conns.pop_pid(7) == []
    assert conns.pop_pid(8) == [(0xA, 1)]
    assert sorted(conns.pop_pid(9)) == [(0x1, 0), (0x2, 0)]
    assert len(conns) == 0


def test_header_struct_reads_what_the_ctypes_mirror_reads() -> None:
    from lumen_sniff.capture.bpf.ringrecords import HEADER_STRUCT

    head = RecordHeader.from_buffer_copy(_raw(data=b"xy"))
    names = [name for name, _ in RecordHeader._fields_ if name != "pad"]
    assert HEADER_STRUCT.size == HEADER_SIZE
    assert HEADER_STRUCT.unpack_from(_raw(data=b"xy")) == tuple(
        getattr(head, name) if name != "comm" else bytes(head.comm).ljust(16, b"\0")
        for name in names
    )


def test_decode_comm_stops_at_the_first_nul_and_unknown_kinds_are_refused() -> None:
    raw = bytearray(_raw(data=b"abc"))
    comm_at = RecordHeader.comm.offset
    raw[comm_at : comm_at + 16] = b"curl\0garbage\0\0\0\0"
    record = decode(bytes(raw))
    assert record is not None and record.comm == "curl"
    raw[RecordHeader.kind.offset] = 9
    assert decode(bytes(raw)) is None


def test_proc_cache_memoises_process_info_until_the_pid_is_forgotten(tmp_path: Path) -> None:
    base = tmp_path / "4242"
    base.mkdir()
    (base / "comm").write_text("python3\n")
    (base / "cgroup").write_text("0::/system.slice/app.service\n")
    (base / "cmdline").write_bytes(b"python3\0app.py\0")
    cache = ProcCache(proc=tmp_path)
    first = cache.lookup(pid=4242, tid=4243, comm="python3", uid=1, cgroup_id=7)
    assert cache.lookup(pid=4242, tid=4243, comm="python3", uid=1, cgroup_id=7) is first
    other_thread = cache.lookup(pid=4242, tid=4244, comm="python3", uid=1, cgroup_id=7)
    assert other_thread.tid == 4244 and other_thread.unit == first.unit == "app.service"
    (base / "cgroup").write_text("0::/system.slice/other.service\n")
    cache.forget(4242)
    again = cache.lookup(pid=4242, tid=4243, comm="python3", uid=1, cgroup_id=7)
    assert again is not first and again.unit == "other.service"


def test_rescans_of_a_starting_process_collapse() -> None:
    # An exec, then ld.so mapping ten libraries: one rescan after the burst and
    # one settling rescan, not two per mapping.
    rescans = Rescans()
    rescans.add(5, delays_s=(0.0, 0.1))
    for _ in range(10):
        rescans.add(5, delays_s=(0.005, 0.1))
    rescans.add(7, delays_s=(0.0,), forget=True)
    seen = []
    while (due := rescans.next_due(timeout_s=0.5)) is not None:
        seen.append(due)
    assert sorted(seen) == [(5, False), (5, False), (7, True)]


def test_discovery_forgets_files_without_tls_but_not_their_verdict(
    tmp_path: Path, elves: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lumen_sniff.capture.bpf.discovery as discovery_module

    _fake_proc(tmp_path, 10, elves["importer"], [elves["lib"]])
    _fake_proc(tmp_path, 11, elves["importer"], [])
    discovery = Discovery(proc=tmp_path / "proc")
    discovery.scan_pid(10)
    discovery.forget_pid(10)
    paths = {t.path: t for t in discovery.files.values()}
    assert str(elves["importer"]) not in paths  # no TLS, no process: not kept
    assert paths[str(elves["lib"])].pids == set()  # hooked files stay
    judged: list[str] = []
    original = discovery_module._judge_file
    monkeypatch.setattr(
        discovery_module,
        "_judge_file",
        lambda path, *rest: judged.append(path) or original(path, *rest),
    )
    discovery.scan_pid(11)
    assert judged == []  # the same file again: its verdict was remembered
    again = {t.path: t for t in discovery.files.values()}[str(elves["importer"])]
    assert (again.skipped, again.pids) == ("no_tls_symbols", {11})
    os.utime(elves["importer"], ns=(1, 1))  # changed in place: judged afresh
    discovery.forget_pid(11)
    discovery.scan_pid(11)
    assert judged == [str(elves["importer"])]
