"""Run ``lumen-sniff run`` as a subprocess and put clients in cgroups it can tell apart.

Shared by the daemon end-to-end tests: each client runs in a fresh cgroup named
``lumen-e2e-<id>.scope``, which the daemon reports as the event's systemd
``unit``, so a test finds its own events among whatever else the machine does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.bpfcap import CGROUP_ROOT, REPO, Server

__all__ = [
    "Daemon",
    "Scope",
    "client_result",
    "events_of",
    "free_port",
    "run_client",
    "start_daemon",
    "stop_daemon",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    """A running ``lumen-sniff run`` and how to reach it."""

    proc: subprocess.Popen[str]
    url: str
    db: Path
    log: Path
    ready_s: float = 0.0
    """Seconds from the spawn until ``/api/status`` said ready (the benches print it)."""

    def api(self, path: str, **params: Any) -> Any:
        """GET a JSON route."""
        response = httpx.get(self.url + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        """``/api/status``."""
        status: dict[str, Any] = self.api("/api/status")
        return status

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON route."""
        response = httpx.post(self.url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``lumen-sniff ARGS --api URL``."""
        return subprocess.run(
            [sys.executable, "-m", "lumen_sniff", *args, "--api", self.url],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )

    def stop(self) -> int:
        """SIGTERM (if still running) and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def start_daemon(
    db: Path,
    log: Path,
    *args: str,
    config: Path | None = None,
    poll_s: float = 0.25,
    cpu: int | None = None,
) -> Daemon:
    """Start ``lumen-sniff run --capture bpf`` with ``args`` and wait until it is ready.

    Without ``config`` the daemon reads ``<db's grandparent>/none.toml`` (absent: defaults).
    ``poll_s``: how often readiness is asked (the benches time it: 0.01). ``cpu``: pin
    the daemon to that CPU.
    """
    port = free_port()
    config = config or db.parent.parent / "none.toml"
    handle = log.open("a")
    started = time.monotonic()
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
            str(config),
            *args,
        ],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
    )
    handle.close()  # the child keeps its own descriptor
    daemon = Daemon(proc=proc, url=f"http://127.0.0.1:{port}", db=db, log=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if daemon.api("/api/status")["ready"]:
                daemon.ready_s = time.monotonic() - started
                return daemon
        except httpx.HTTPError:
            pass
        time.sleep(poll_s)
    proc.kill()
    proc.wait()
    raise AssertionError(f"daemon not ready in 90 s: {log.read_text()[-3000:]}")


def stop_daemon(daemon: Daemon) -> int:
    """SIGTERM and wait; the exit code."""
    return daemon.stop()


class Scope:
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


def events_of(
    daemon: Daemon, unit: str, want: int, timeout_s: float = 20, **filters: str
) -> list[dict[str, Any]]:
    """The events of cgroup ``unit``, once there are ``want`` (or at the timeout).

    ``filters`` (e.g. ``since``, ``until``, ``service``) narrow the route first, so
    other LLM traffic on the machine cannot push a test's events out of the newest
    1,000 (the API has no ``unit`` filter).
    """
    deadline = time.monotonic() + timeout_s
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        page = daemon.api("/api/events", limit=1000, **filters)["events"]
        mine = [e for e in page if e["unit"] == unit]
        if len(mine) >= want:
            return mine
        time.sleep(0.2)
    return mine


def run_client(standin: Server, scope: Scope, scenario: str) -> subprocess.Popen[str]:
    """Start a ``tests.support.clients`` scenario against the stand-in, inside ``scope``."""
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


def client_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a client started by :func:`run_client`; return what it reported."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
