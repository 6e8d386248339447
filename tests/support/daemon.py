"""A ``lumen-sniff run`` subprocess for integration tests: its own database and port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.bpfcap import REPO

__all__ = ["Daemon", "free_port", "start_daemon", "stop_daemon"]


def free_port() -> int:
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


def start_daemon(db: Path, log: Path) -> Daemon:
    port = free_port()
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


def stop_daemon(daemon: Daemon) -> int:
    daemon.proc.send_signal(signal.SIGTERM)
    return daemon.proc.wait(60)
