"""eBPF capture settings on a real kernel: the per-call cap and the process filters.

These need captures of their own (other settings), compiled once per module.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumen_sniff.capture.bpf.loader import BpfCapture
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.model import Chunk, Direction
from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, Server, TestCgroup, bpf_ready, reassemble, spawn_server
from tests.support.tlsecho import expected, parse_plan

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    ca_dir = str(tmp_path_factory.mktemp("ca"))
    with spawn_server("tests.support.tlsecho", "serve", "--ca-dir", ca_dir) as server:
        yield server


@pytest.fixture
def cgroup() -> Iterator[TestCgroup]:
    cg = TestCgroup()
    yield cg
    cg.remove()


def _client(cg: TestCgroup, echo: Server, plan: str, *flags: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.support.tlsecho", "client", "--port"]
    argv += [str(echo.info["port"]), "--ca", echo.info["ca"], "--plan", plan, *flags]
    return subprocess.Popen(
        cg.argv(*argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _step(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def _wait(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def _drain(
    capture: BpfCapture, pid: int, *, until_closed: bool, timeout_s: float = 5
) -> list[Chunk]:
    got: list[Chunk] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = capture.chunks.get(timeout=0.05)
        except queue.Empty:
            if not until_closed:
                break
            continue
        if chunk.conn.pid == pid:
            got.append(chunk)
            if until_closed and chunk.closed:
                break
    return got


def test_bytes_past_the_per_call_cap_are_counted_as_lost(echo: Server, cgroup: TestCgroup) -> None:
    plan = "300000:5,10:10"
    proc = _client(cgroup, echo, plan, "--wait-stdin")
    assert proc.stdout is not None
    pid = int(json.loads(proc.stdout.readline())["pid"])
    capture = BpfCapture(BpfSettings(pids=(pid,), max_bytes_per_call=65536))
    capture.start()
    try:
        _step(proc)
        _wait(proc)
        chunks = _drain(capture, pid, until_closed=True)
        drops = capture.drops()
    finally:
        capture.stop()
    egress, ingress = expected(parse_plan(plan))
    first_call = len(b"LUMEN 300000 5\n") + 300000
    got_out, lost_out = reassemble(chunks, Direction.EGRESS)
    assert lost_out == first_call - 65536
    assert got_out == egress[:65536] + egress[first_call:]
    assert reassemble(chunks, Direction.INGRESS) == (ingress, 0)
    cut = [c for c in chunks if c.lost_bytes]
    assert len(cut) == 1 and cut[0].offset + len(cut[0].data) == 65536
    assert drops["cap_exceeded"] == {"records": 1, "bytes": first_call - 65536}


def test_comm_filter_keeps_curl_and_stops_others_in_the_kernel(
    echo: Server, cgroup: TestCgroup, tmp_path: Path
) -> None:
    require_or_skip(shutil.which("curl") is not None, "curl is not installed")
    capture = BpfCapture(BpfSettings(comms=("curl",)))
    capture.start()
    try:
        proc = _client(cgroup, echo, ",".join(["40:40"] * 30), "--pause-after", "1")
        assert proc.stdout is not None
        pid = int(json.loads(proc.stdout.readline())["pid"])
        deadline = time.monotonic() + 5
        while pid not in capture.kernel_skips() and time.monotonic() < deadline:
            time.sleep(0.01)
        # The first exchange reached user space, was refused, and the kernel was told.
        assert pid in capture.kernel_skips()
        _step(proc)
        _wait(proc)
        time.sleep(0.1)
        assert _drain(capture, pid, until_closed=False) == []
        run = subprocess.run(
            cgroup.argv("curl", "-sS", "--cacert", str(echo.info["ca"]), "-o", "/dev/null",
                        f"https://localhost:{echo.info['port']}/"),
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        # The echo server is not HTTP: curl's request goes out, the answer never comes.
        assert run.returncode != 0
        deadline = time.monotonic() + 5
        seen: list[Chunk] = []
        while time.monotonic() < deadline and not any(c.closed for c in seen):
            try:
                seen.append(capture.chunks.get(timeout=0.05))
            except queue.Empty:
                continue
        curl = [c for c in seen if c.process is not None and c.process.comm == "curl"]
        assert curl and all(c.process and c.process.comm == "curl" for c in seen)
        egress, lost = reassemble(curl, Direction.EGRESS)
        assert egress.startswith(b"GET / HTTP/1.1\r\nHost: localhost:") and lost == 0
    finally:
        capture.stop()
