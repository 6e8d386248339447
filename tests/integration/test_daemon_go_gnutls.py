"""The daemon end to end for Go and GnuTLS clients: exact usage in ``/api/events``.

A stripped Go ``net/http`` client (HTTP/2) and a libcurl-gnutls client
(HTTP/1.1) each make three OpenAI calls to the stand-in while ``lumen-sniff
run`` watches the whole machine. Their events, found by the systemd-style
unit of the cgroup each client runs in, must carry exactly the usage the client
read itself, a cost, and the client's pid and name. The Go program must print
what an unhooked copy of it prints.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, Server, bpf_ready
from tests.support.daemonproc import Daemon, Scope, events_of, start_daemon, stop_daemon
from tests.support.golang import build_goclient, go_available, run_unhooked

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
_GO_RUNS = 3


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    ok, why = go_available()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "none.toml").write_text("")
        yield path


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    running = start_daemon(workdir / "state" / "lumen.db", workdir / "daemon.log")
    yield running
    if running.proc.poll() is None:
        stop_daemon(running)


def _hooked_paths(status: Any) -> set[str]:
    """Paths of every hooked file, wherever the status nests its backends."""
    found: set[str] = set()
    if isinstance(status, dict):
        for key, value in status.items():
            if key == "hooked" and isinstance(value, list):
                found |= {h["path"] for h in value if h.get("probes")}
            else:
                found |= _hooked_paths(value)
    return found


def _run(scope: Scope, argv: list[str], wait_for: str = "") -> tuple[int, str, str, int]:
    with subprocess.Popen(
        scope.argv(*argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    ) as proc:  # fmt: skip
        out, err = proc.communicate(wait_for or "\n", timeout=120)
    return proc.returncode, out, err, proc.pid


def _check(events: list[dict[str, Any]], client: dict[str, Any], name: str) -> None:
    assert len(events) == client["calls"], events
    for event in events:
        assert (event["status"], event["usage_source"]) == (200, "reported")
        assert event["model"].startswith("gpt-4o-mini")
        assert event["cost_usd"] is not None and event["cost_usd"] > 0
        assert event["process"] == name
        assert event["api_key_id"] and "sk-" not in event["api_key_id"]
    assert sorted(e["stream"] for e in events) == [False, False, True]
    assert {t: sum(e[t] for e in events) for t in _TOKENS} == client["usage"]


def test_stripped_go_client_shows_exact_usage_in_the_api(
    daemon: Daemon, standin: Server, workdir: Path
) -> None:
    binary = build_goclient(workdir, stripped=True, name="goclient-s")
    args = [str(standin.info["ca"]), str(standin.info["base_url"]), "h2"]
    reference = run_unhooked(binary, *args)
    assert reference.returncode == 0, reference.stderr[-2000:]
    scope = Scope()
    try:
        pids = []
        for _run_no in range(_GO_RUNS):  # several runs: none may differ from the reference
            with subprocess.Popen(
                scope.argv(str(binary), *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            ) as proc:  # fmt: skip
                # A new binary: let the daemon hook it before the client starts talking.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if str(binary) in _hooked_paths(daemon.api("/api/status")):
                        break
                    time.sleep(0.05)
                out, err = proc.communicate("\n", timeout=120)
            assert (proc.returncode, out) == (reference.returncode, reference.stdout), err[-2000:]
            pids.append(proc.pid)
        client = json.loads(out.strip().splitlines()[-1])
        events = events_of(daemon, scope.name, want=client["calls"] * _GO_RUNS)
        for pid in pids:
            _check([e for e in events if e["pid"] == pid], client, binary.name)
    finally:
        scope.remove()


def test_libcurl_gnutls_client_shows_exact_usage_in_the_api(
    daemon: Daemon, standin: Server
) -> None:
    ok = subprocess.run(["/usr/bin/python3", "-c", "import pycurl"], check=False).returncode == 0
    require_or_skip(ok, "python3-pycurl is missing (make setup installs it)")
    scope = Scope()
    try:
        argv = ["/usr/bin/python3", str(REPO / "tests/support/gnutls_client.py")]
        argv += [str(standin.info["ca"]), str(standin.info["base_url"]), "h1"]
        code, out, err, pid = _run(scope, argv)
        assert code == 0, err[-2000:]
        client = json.loads(out.strip().splitlines()[-1])
        events = events_of(daemon, scope.name, want=client["calls"])
        assert {e["pid"] for e in events} == {pid}, daemon.log.read_text()[-2000:]
        _check(events, client, "python3")
    finally:
        scope.remove()
