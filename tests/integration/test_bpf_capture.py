"""eBPF capture against real clients over real TLS: every byte, exactly, or counted.

One capture per test process (tests/support/bpfcap.py); each client runs in its
own cgroup so other TLS traffic on the machine is never mistaken for the test's.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumen_sniff.model import Chunk, Direction
from tests.conftest import require_or_skip
from tests.support.bpfcap import (
    REPO,
    Collector,
    Server,
    TestCgroup,
    reassemble,
    spawn_server,
)
from tests.support.clients_common import OPENAI_KEY
from tests.support.tlsecho import expected, parse_plan

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with spawn_server(
        "tests.support.tlsecho", "serve", "--ca-dir", str(tmp_path_factory.mktemp("ca"))
    ) as server:
        yield server


@pytest.fixture
def cgroup(collector: Collector) -> Iterator[TestCgroup]:
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    yield cg
    cg.remove()


def _echo_client(
    cg: TestCgroup, echo: Server, plan: str, *flags: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.support.tlsecho", "client"]
    argv += ["--port", str(echo.info["port"]), "--ca", echo.info["ca"], "--plan", plan, *flags]
    return subprocess.Popen(
        cg.argv(*argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def _line(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"client ended early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
    out: dict[str, object] = json.loads(line)
    return out


def _go_on(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def _finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    done = _line(proc)
    code = proc.wait(30)
    err = proc.stderr.read() if proc.stderr else ""
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    assert code == 0, err
    return done


def _of_pid(pid: int) -> object:
    return lambda c: c.conn.pid == pid


def _closed(chunks: list[Chunk]) -> bool:
    return any(c.closed for c in chunks)


def _assert_exact(chunks: list[Chunk], plan: str) -> None:
    egress, ingress = expected(parse_plan(plan))
    assert reassemble(chunks, Direction.EGRESS) == (egress, 0)
    assert reassemble(chunks, Direction.INGRESS) == (ingress, 0)


def test_python_ssl_exact_bytes_and_leader_identity(
    collector: Collector, echo: Server, cgroup: TestCgroup
) -> None:
    plan = "10:20,1000:2000,17:16384"
    start_ns = time.time_ns()
    proc = _echo_client(cgroup, echo, plan, "--thread-name", "lumen-worker")
    pid = int(_finish(proc)["pid"])  # type: ignore[call-overload]
    chunks = collector.wait_for(_closed, of=_of_pid(pid))
    _assert_exact(chunks, plan)
    assert len({c.conn for c in chunks}) == 1
    data = [c for c in chunks if not c.closed]
    closed = [c for c in chunks if c.closed]
    assert len(closed) == 1 and closed[0].offset == len(expected(parse_plan(plan))[0])
    for chunk in data:
        info = chunk.process
        assert info is not None
        # The calls ran in a thread renamed "lumen-worker": the leader's name is reported.
        assert info.comm == Path(sys.executable).name[:15]
        assert info.pid == pid and info.tid not in (0, pid)
        assert info.uid == os.getuid()
        assert info.cgroup_id == cgroup.cgroup_id
        assert info.exe == os.path.realpath(sys.executable)
        assert start_ns <= chunk.ts_ns <= time.time_ns()
    assert [c.ts_ns for c in data] == sorted(c.ts_ns for c in data)


def test_300kb_write_copied_whole_in_bounded_records(
    collector: Collector, echo: Server, cgroup: TestCgroup
) -> None:
    plan = "300000:5"
    pid = int(_finish(_echo_client(cgroup, echo, plan))["pid"])  # type: ignore[call-overload]
    chunks = collector.wait_for(_closed, of=_of_pid(pid))
    _assert_exact(chunks, plan)
    egress = [c for c in chunks if c.direction is Direction.EGRESS and c.data]
    total = len(expected(parse_plan(plan))[0])
    assert len(egress) == math.ceil(total / 16384)
    assert max(len(c.data) for c in egress) == 16384
    assert collector.capture.drops()["cap_exceeded"]["records"] == 0


def test_exit_without_ssl_free_still_closes(
    collector: Collector, echo: Server, cgroup: TestCgroup
) -> None:
    plan = "64:64"
    pid = int(_finish(_echo_client(cgroup, echo, plan, "--exit-hard"))["pid"])  # type: ignore[call-overload]
    chunks = collector.wait_for(_closed, of=_of_pid(pid))
    _assert_exact(chunks, plan)
    closed = [c for c in chunks if c.closed]
    assert len(closed) == 1
    assert closed[0].offset == len(expected(parse_plan(plan))[0])


def test_ignored_connection_is_no_longer_copied(
    collector: Collector, echo: Server, cgroup: TestCgroup
) -> None:
    plan = "50:60,5000:6000"
    proc = _echo_client(cgroup, echo, plan, "--pause-after", "1")
    pid = int(_line(proc)["pid"])  # type: ignore[call-overload]
    first_out = len(expected(parse_plan("50:60"))[0])
    chunks = collector.wait_for(
        lambda cs: len(reassemble(cs, Direction.INGRESS)[0]) == 60, of=_of_pid(pid)
    )
    assert len(reassemble(chunks, Direction.EGRESS)[0]) == first_out
    drops_before = collector.capture.drops()
    collector.capture.ignore(chunks[0].conn)
    _go_on(proc)
    _finish(proc)
    after = collector.wait_for(_closed, of=_of_pid(pid))
    time.sleep(0.1)  # longer than the poll timeout: anything copied would be here
    after = collector.chunks(_of_pid(pid))
    # Nothing more but the close (the next connection may get the same SSL*).
    assert after[: len(chunks)] == chunks
    assert len(after) == len(chunks) + 1 and after[-1].closed and not after[-1].data
    assert collector.capture.drops() == drops_before
    assert collector.capture.status()["counters"]["ignored_connections"] >= 1


def test_seccomp_confined_client_survives_and_is_captured(
    collector: Collector, echo: Server, cgroup: TestCgroup
) -> None:
    plan = "100:200,3000:10"
    pid = int(_finish(_echo_client(cgroup, echo, plan, "--seccomp"))["pid"])  # type: ignore[call-overload]
    chunks = collector.wait_for(_closed, of=_of_pid(pid))
    _assert_exact(chunks, plan)


def test_library_dlopened_after_start_is_hooked(
    collector: Collector, echo: Server, cgroup: TestCgroup, tmp_path: Path
) -> None:
    # A libssl no process had mapped when the capture started (a fresh inode), loaded
    # only at `import ssl`, long after exec: only the mmap watch can find it.
    libdir = tmp_path / "lib"
    libdir.mkdir()
    copy = libdir / "libssl.so.3"
    shutil.copyfile("/usr/lib/x86_64-linux-gnu/libssl.so.3", copy)
    env = {**os.environ, "LD_LIBRARY_PATH": str(libdir)}
    plan = "123:456"
    proc = _echo_client(cgroup, echo, plan, "--wait-stdin", "--late-import", env=env)
    pid = int(_line(proc)["pid"])  # type: ignore[call-overload]
    assert str(copy) not in _hooked(collector)
    _go_on(proc)
    _line(proc)  # imported and handshaken
    start = time.monotonic()
    while str(copy) not in _hooked(collector) and time.monotonic() - start < 5:
        time.sleep(0.005)
    assert str(copy) in _hooked(collector), "the dlopen'ed library was not hooked"
    assert pid in _hooked(collector)[str(copy)]["pids"]
    _go_on(proc)
    _finish(proc)
    chunks = collector.wait_for(_closed, of=_of_pid(pid))
    _assert_exact(chunks, plan)


def _hooked(collector: Collector) -> dict[str, dict[str, object]]:
    return {h["path"]: h for h in collector.capture.status()["hooked"]}


# ------------------------------------------------------------ curl and node vs the stand-in


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    ca_dir = tmp_path_factory.mktemp("standin-ca")
    records = tmp_path_factory.mktemp("standin-records")
    with spawn_server(
        "tests.support.standin",
        "--tls",
        "--port",
        "0",
        "--ca-dir",
        str(ca_dir),
        "--record-dir",
        str(records),
    ) as server:
        yield server, records


def _closed_conns_of(collector: Collector, comm: str, timeout_s: float = 5) -> list[Chunk]:
    """Chunks of the connections made by processes named ``comm``, once all are closed."""
    deadline = time.monotonic() + timeout_s
    while True:
        every = collector.chunks()
        conns = {c.conn for c in every if c.process is not None and c.process.comm == comm}
        mine = [c for c in every if c.conn in conns]
        if conns and conns == {c.conn for c in mine if c.closed}:
            return mine
        if time.monotonic() > deadline:
            raise AssertionError(f"no closed connection of {comm}: {len(mine)} chunks")
        time.sleep(0.02)


def _server_record(records: Path, egress: bytes, timeout_s: float = 5) -> dict[str, bytes]:
    """The stand-in's own record of the connection whose client bytes start like ``egress``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in sorted(records.glob("conn-*.json")):
            rec = json.loads(path.read_text())
            streams = {"egress": b"", "ingress": b""}
            for chunk in rec["chunks"]:
                streams[chunk["direction"]] += base64.b64decode(chunk["data_b64"])
            if streams["egress"][:64] == egress[:64]:
                return streams
        time.sleep(0.05)
    raise AssertionError("the stand-in recorded no such connection")


_CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the stand-in"}]}
)


def test_curl_http2_started_after_capture_matches_server_bytes(
    collector: Collector, standin: tuple[Server, Path], cgroup: TestCgroup
) -> None:
    server, records = standin
    argv = ["curl", "-sS", "--http2", "--cacert", str(server.info["ca"]), "-o", "/dev/null"]
    argv += ["-H", "content-type: application/json", "-H", f"authorization: Bearer {OPENAI_KEY}"]
    argv += ["--data", _CHAT_BODY, f"{server.info['base_url']}/v1/chat/completions"]
    proc = subprocess.run(cgroup.argv(*argv), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    chunks = _closed_conns_of(collector, "curl")
    egress, lost_out = reassemble(chunks, Direction.EGRESS)
    ingress, lost_in = reassemble(chunks, Direction.INGRESS)
    assert egress.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    streams = _server_record(records, egress)
    assert (egress, lost_out) == (streams["egress"], 0)
    # The server may write a last frame (GOAWAY) after curl stopped reading.
    assert lost_in == 0 and ingress == streams["ingress"][: len(ingress)]
    assert len(ingress) >= len(streams["ingress"]) - 17
    assert all(c.process and c.process.exe == shutil.which("curl") for c in chunks if c.process)


def test_node_fetch_through_its_own_openssl(
    collector: Collector, standin: tuple[Server, Path], cgroup: TestCgroup
) -> None:
    node = shutil.which("node")
    require_or_skip(node is not None, "node is not installed")
    assert node is not None
    script = (
        "const r = await fetch(process.argv[1], {method: 'POST', body: process.argv[2],"
        " headers: {'content-type': 'application/json',"
        f" authorization: 'Bearer {OPENAI_KEY}'}}}});"
        " await r.text(); console.log(r.status);"
    )
    server, records = standin
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(server.info["ca"])}
    argv = [
        node,
        "--input-type=module",
        "-e",
        script,
        f"{server.info['base_url']}/v1/chat/completions",
        _CHAT_BODY,
    ]
    proc = subprocess.run(cgroup.argv(*argv), capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "200", proc.stderr
    chunks = _closed_conns_of(collector, "node")
    assert len({c.conn for c in chunks}) == 1
    egress, lost_out = reassemble(chunks, Direction.EGRESS)
    ingress, lost_in = reassemble(chunks, Direction.INGRESS)
    assert egress.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    streams = _server_record(records, egress)
    assert (egress, lost_out) == (streams["egress"], 0)
    assert (ingress, lost_in) == (streams["ingress"], 0)
    hooked = _hooked(collector)
    real = os.path.realpath(node)
    libssl_users = any("libssl" in p for p in hooked)
    # NodeSource's node carries OpenSSL inside the executable; Debian's maps libssl.so.3.
    assert (real in hooked and hooked[real]["kind"] == "executable") or libssl_users


def test_status_lists_hooked_files_and_drop_reasons(collector: Collector) -> None:
    status = collector.capture.status()
    assert status["source"] == "bpf" and status["running"] is True
    assert set(status["dropped"]) == {
        "ringbuf_full",
        "cap_exceeded",
        "read_failed",
        "queue_full",
        "unseen_ringbuf_full",
        "unseen_overflow",
    }
    assert status["blind_spots"]["active"], status["blind_spots"]["error"]
    libs = [h for h in status["hooked"] if h["kind"] == "library"]
    assert libs, status["hooked"]
    assert all(h["error"] == "" for h in status["hooked"])
    assert "SSL_write_ex:ret" in libs[0]["probes"] and "SSL_free" in libs[0]["probes"]
