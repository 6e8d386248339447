"""``lumen-sniff run`` with a config file and extra flags, as the budget tests and bench need."""

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

__all__ = ["DaemonProc", "free_port", "start_daemon"]


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DaemonProc:
    """A running daemon."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def api(self, path: str, **params: Any) -> Any:
        """GET a JSON route."""
        response = httpx.get(self.url + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

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
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def start_daemon(db: Path, config: Path, log: Path, *args: str) -> DaemonProc:
    """Start the daemon (eBPF capture) and wait until it is ready."""
    port = free_port()
    with log.open("a") as handle:
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
        )
    daemon = DaemonProc(proc=proc, url=f"http://127.0.0.1:{port}", log=log)
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
    proc.wait()
    raise AssertionError(f"daemon not ready in 90 s: {log.read_text()[-3000:]}")
