"""Machinery of the fleet test: daemons with their own config, named clients, Prometheus.

Several daemons on one machine each attach their own eBPF capture and would
all see every client. So each daemon gets ``[capture] comms = [<name>]`` and
its clients rename themselves to that name (``prctl(PR_SET_NAME)``) before
they make any TLS call: each daemon records exactly its own host's traffic,
and the name becomes the events' ``process``.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.bpfcap import REPO

__all__ = ["DaemonProc", "Prometheus", "free_port", "run_named_client", "wait_until"]

_NAMED = (
    "import ctypes, runpy, sys\n"
    "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME\n"
    "sys.argv = ['tests.support.clients', *sys.argv[2:]]\n"
    "runpy.run_module('tests.support.clients', run_name='__main__', alter_sys=True)\n"
)


def free_port() -> int:
    """A port nothing listens on right now (bind 0, then release)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run_named_client(
    name: str, scenario: str, standin: dict[str, Any], tenant: str
) -> dict[str, Any]:
    """Run one client scenario as process ``name``; return its JSON result."""
    argv = [sys.executable, "-c", _NAMED, name, scenario, "--base-url",
            str(standin["base_url"]), "--ca", str(standin["ca"]), "--tenant", tenant]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@dataclass
class DaemonProc:
    """One ``lumen-sniff run`` with its own database, port and config."""

    name: str
    workdir: Path
    config: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def start(self) -> None:
        conf = self.workdir / f"{self.name}.toml"
        conf.write_text(self.config)
        with self.log.open("a") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lumen_sniff", "run", "--capture", "bpf",
                 "--db", str(self.workdir / self.name / "lumen.db"),
                 "--listen", f"127.0.0.1:{self.port}", "--config", str(conf)],
                stdout=handle, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                if self.api("/api/status")["ready"]:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{self.name} not ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(60) == 0, self.log.read_text()[-3000:]
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()


class Prometheus:
    """Debian's prometheus, on an ephemeral port with temp storage, scraping the daemons."""

    def __init__(self, targets: dict[str, int], rule_files: list[Path]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("prometheus (Debian package prometheus) is not installed")
        self._tmp = tempfile.TemporaryDirectory(prefix="lumen-prom-")
        tmp = Path(self._tmp.name)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "lumen-sniff",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"host": host}}
                        for host, port in targets.items()
                    ],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        with self.log.open("w") as handle:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._ready, 60, "prometheus ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises on a PromQL error."""
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def range_values(self, expr: str, start_s: float, end_s: float) -> list[float]:
        """The values of a one-series range query at 1 s steps."""
        response = httpx.get(
            self.url + "/api/v1/query_range",
            params={"query": expr, "start": start_s, "end": end_s, "step": "1s"},
            timeout=10,
        )
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result = body["data"]["result"]
        return [float(v) for _, v in result[0]["values"]] if result else []

    def value(self, expr: str) -> float | None:
        """The single value of a one-series instant query, None when empty."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def by(self, expr: str, label: str) -> dict[str, float]:
        """label value → value of an instant query grouped by ``label``."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._tmp.cleanup()
