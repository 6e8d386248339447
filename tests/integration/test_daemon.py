"""The daemon end to end: real clients → eBPF → pipeline → SQLite → HTTP API.

``lumen-sniff run`` runs as a subprocess with its own database and port. Each
client runs in a fresh cgroup named ``lumen-e2e-<id>.scope``, which the daemon
reports as the event's systemd ``unit``: that is how a test finds its own events
among whatever else the machine is doing.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, Server, bpf_ready
from tests.support.daemonproc import Daemon
from tests.support.daemonproc import Scope as _Scope
from tests.support.daemonproc import client_result as _client_result
from tests.support.daemonproc import events_of as _events_of
from tests.support.daemonproc import run_client as _run_client
from tests.support.daemonproc import start_daemon as _start_daemon
from tests.support.daemonproc import stop_daemon as _stop

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "none.toml").write_text("")
        yield path


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    running = _start_daemon(workdir / "state" / "lumen.db", workdir / "daemon.log")
    yield running
    if running.proc.poll() is None:
        _stop(running)


@pytest.mark.parametrize(
    "scenario",
    [
        "openai_chat_stream_usage",
        "anthropic_stream_cache_read",
        "gemini_generate_cached",
        "curl_h2_chat_stream",
        "node_fetch_chat",
    ],
)
def test_daemon_stores_what_the_client_reported(
    daemon: Daemon, standin: Server, scenario: str
) -> None:
    scope = _Scope()
    try:
        client = _client_result(_run_client(standin, scope, scenario))
        events = _events_of(daemon, scope.name, want=1)
    finally:
        scope.remove()
    assert len(events) == 1, daemon.log.read_text()[-2000:]
    (event,) = events
    assert event["status"] == 200
    assert event["usage_source"] == "reported"
    for name in _TOKENS:
        assert event[name] == client["usage"][name], name
    assert event["model"].startswith(client["model"])
    assert event["cost_usd"] is not None and event["cost_usd"] > 0
    assert event["pid"] > 0 and event["process"]
    assert event["api_key_id"] and "sk-" not in event["api_key_id"]
    status = daemon.api("/api/status")
    assert status["ready"] is True


def test_db_and_state_dir_are_private(daemon: Daemon) -> None:
    assert daemon.db.stat().st_mode & 0o777 == 0o600
    assert daemon.db.parent.stat().st_mode & 0o777 == 0o700


def test_sigterm_under_load_loses_nothing_and_restart_keeps_it(
    workdir: Path, standin: Server
) -> None:
    db = workdir / "sigterm" / "lumen.db"
    daemon = _start_daemon(db, workdir / "sigterm.log")
    started = datetime.now(UTC) - timedelta(seconds=1)
    scope = _Scope()
    try:
        clients = [_run_client(standin, scope, "openai_chat") for _ in range(8)]
        results = [_client_result(p) for p in clients]
        # Stop at once: events may still sit in the pipeline or the writer's queue.
        assert _stop(daemon) == 0, daemon.log.read_text()[-2000:]
    finally:
        scope.remove()
    stopped = datetime.now(UTC) + timedelta(seconds=1)
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "SELECT COUNT(*), SUM(input_tokens) FROM events WHERE unit = ?", (scope.name,)
        ).fetchone()
        services = conn.execute(
            "SELECT DISTINCT service FROM events WHERE unit = ?", (scope.name,)
        ).fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert stored == (8, sum(r["usage"]["input_tokens"] for r in results))
    assert len(services) == 1, services
    restarted = _start_daemon(db, workdir / "sigterm.log")
    try:
        # Only this test's window and service: other LLM traffic on the machine,
        # captured by both daemons, must not crowd its 8 events out of the page.
        mine = _events_of(
            restarted, scope.name, want=8, timeout_s=5,
            since=started.isoformat(), until=stopped.isoformat(), service=services[0][0],
        )  # fmt: skip
        assert len(mine) == 8
    finally:
        assert _stop(restarted) == 0


def test_a_process_that_is_not_llm_traffic_yields_nothing(daemon: Daemon, standin: Server) -> None:
    scope = _Scope()
    try:
        run = subprocess.run(
            scope.argv(
                "curl",
                "-sS",
                "--http2",
                "--cacert",
                str(standin.info["ca"]),
                str(standin.info["base_url"]) + "/healthz",
                "-o",
                os.devnull,
            ),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        time.sleep(1.0)
        assert _events_of(daemon, scope.name, want=1, timeout_s=1) == []
    finally:
        scope.remove()


def test_a_taken_api_port_is_a_clear_error_not_a_hang(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "lumen_sniff",
                "run",
                "--capture",
                "bpf",
                "--db",
                str(workdir / "taken" / "lumen.db"),
                "--listen",
                f"127.0.0.1:{port}",
                "--config",
                str(workdir / "none.toml"),
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=REPO,
            check=False,
        )
    assert run.returncode == 1
    assert f"the API cannot listen on 127.0.0.1:{port}" in run.stderr


def test_the_daemon_maps_neither_llvm_nor_bcc(daemon: Daemon) -> None:
    # bcc compiles in a short-lived child (or not at all, from the object cache):
    # its LLVM and clang (about 85 MB touched) never enter the daemon. libbcc_bpf,
    # bcc's small LLVM-free library that attaches the uprobes, may be there.
    status = daemon.api("/api/status")
    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    files = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    assert not [f for f in files if "libLLVM" in f or "libclang" in f], files
    assert not [f for f in files if os.path.basename(f).startswith("libbcc.so")], files
    # The ring buffers' fill levels are in the status (read from their mapped pages).
    rings = status["capture"]["backends"]["BpfCapture"]["ring_buffers"]
    assert rings["lumen_events"]["size"] == 8 << 20
    assert 0 <= rings["lumen_events"]["bytes"] <= rings["lumen_events"]["size"]
    assert "lumen_sockets" in rings
