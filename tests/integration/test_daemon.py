"""The daemon end to end: real clients → eBPF → pipeline → SQLite → HTTP API.

``lumen-sniff run`` runs as a subprocess with its own database and port. Each
client runs in a fresh cgroup named ``lumen-e2e-<id>.scope``, which the daemon
reports as the event's systemd ``unit``: that is how a test finds its own events
among whatever else the machine is doing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import CGROUP_ROOT, REPO, Server, bpf_ready, spawn_server

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    url: str
    db: Path
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()


def _start_daemon(db: Path, log: Path) -> Daemon:
    port = _free_port()
    handle = log.open("a")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lumen_sniff",
            "run",
            "--capture",
            "bpf",
            "--db",
            str(db),
            "--listen",
            f"127.0.0.1:{port}",
            "--config",
            str(db.parent.parent / "none.toml"),
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    handle.close()  # the child keeps its own descriptor
    daemon = Daemon(proc=proc, url=f"http://127.0.0.1:{port}", db=db, log=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if daemon.api("/api/status")["ready"]:
                return daemon
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise AssertionError(f"daemon not ready in 90 s: {log.read_text()[-3000:]}")


def _stop(daemon: Daemon) -> int:
    daemon.proc.send_signal(signal.SIGTERM)
    return daemon.proc.wait(60)


class _Scope:
    """A cgroup whose processes the daemon labels with unit ``<name>``."""

    def __init__(self) -> None:
        self.name = f"lumen-e2e-{uuid.uuid4().hex[:10]}.scope"
        self.path = CGROUP_ROOT / self.name
        self.path.mkdir()

    def argv(self, *cmd: str) -> list[str]:
        return ["/bin/sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *cmd]

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.05)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "none.toml").write_text("")
        yield path


@pytest.fixture(scope="module")
def standin() -> Iterator[Server]:
    with (
        tempfile.TemporaryDirectory() as ca_dir,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    running = _start_daemon(workdir / "state" / "lumen.db", workdir / "daemon.log")
    yield running
    if running.proc.poll() is None:
        _stop(running)


def _run_client(standin: Server, scope: _Scope, scenario: str) -> subprocess.Popen[str]:
    argv = [
        sys.executable,
        "-m",
        "tests.support.clients",
        scenario,
        "--base-url",
        str(standin.info["base_url"]),
        "--ca",
        str(standin.info["ca"]),
    ]
    return subprocess.Popen(
        scope.argv(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )


def _client_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _events_of(daemon: Daemon, unit: str, want: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        mine = [e for e in daemon.api("/api/events", limit=1000)["events"] if e["unit"] == unit]
        if len(mine) >= want:
            return mine
        time.sleep(0.2)
    return mine


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
    scope = _Scope()
    try:
        clients = [_run_client(standin, scope, "openai_chat") for _ in range(8)]
        results = [_client_result(p) for p in clients]
        # Stop at once: events may still sit in the pipeline or the writer's queue.
        assert _stop(daemon) == 0, daemon.log.read_text()[-2000:]
    finally:
        scope.remove()
    with sqlite3.connect(db) as conn:
        stored = conn.execute(
            "SELECT COUNT(*), SUM(input_tokens) FROM events WHERE unit = ?", (scope.name,)
        ).fetchone()
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert stored == (8, sum(r["usage"]["input_tokens"] for r in results))
    restarted = _start_daemon(db, workdir / "sigterm.log")
    try:
        assert len(_events_of(restarted, scope.name, want=8, timeout_s=5)) == 8
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
            [sys.executable, "-m", "lumen_sniff", "run", "--capture", "bpf",
             "--db", str(workdir / "taken" / "lumen.db"), "--listen", f"127.0.0.1:{port}",
             "--config", str(workdir / "none.toml")],
            capture_output=True, text=True, timeout=90, cwd=REPO, check=False,
        )
    assert run.returncode == 1
    assert f"the API cannot listen on 127.0.0.1:{port}" in run.stderr
