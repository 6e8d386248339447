"""Budgets enforced on real clients: the official OpenAI SDK against the TLS stand-in.

One daemon (eBPF capture, its own database, port and config) watches services
each run from a script named after itself (the service name the daemon derives
from the command line) and renamed (``prctl(PR_SET_NAME)``, so the name guard
refuses new processes of a blocked service). A webhook receiver on 127.0.0.1
collects alerts. Tests run in file order and share the daemon; the last one
restarts it and then ``kill -9``s it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import CGROUP_ROOT, REPO, Server, bpf_ready, spawn_server
from tests.support.daemonproc import Daemon, start_daemon
from tests.support.webhook import WebhookReceiver

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

# One stand-in chat call costs $0.00000915 (gpt-4o-mini): these limits fall
# between the 5th and 6th call (day) and the 3rd and 4th (the others).
CONFIG = """
[[budgets]]
name = "capped-day"
scope = "service"
match = "capped-a"
period = "day"
limit_usd = 0.00005
action = "block"

[[budgets]]
name = "capped-roll"
scope = "service"
match = "capped-b"
period = "1m"
limit_usd = 0.00003
thresholds = [100]
action = "block"

[[budgets]]
name = "paused"
scope = "service"
match = "pause-me"
period = "day"
limit_usd = 0.00003
thresholds = [100]
action = "pause"

[[budgets]]
name = "paused-two"
scope = "service"
match = "pause-two"
period = "day"
limit_usd = 0.00003
thresholds = [100]
action = "pause"

[[budgets]]
name = "inflight"
scope = "service"
match = "inflight-a"
period = "day"
limit_usd = 0.00003
thresholds = [100]
action = "block"

[[alerts.webhooks]]
url = "{hook}/json"
headers = {{ X-Token = "t0k" }}

[[alerts.webhooks]]
url = "{hook}/slack"
format = "slack"
"""
_WATCHED = (
    "capped-a",
    "capped-b",
    "free-agent",
    "inflight-a",
    "pause-me",
    "pause-two",
    "unit-agent",
)


@dataclass
class Env:
    standin: Server
    hook: WebhookReceiver
    dir: Path
    daemon: Daemon

    def start(self) -> None:
        args = [a for name in _WATCHED for a in ("--comm", name)]
        self.daemon = start_daemon(
            self.dir / "db" / "lumen.db",
            self.dir / "daemon.log",
            *args,
            config=self.dir / "config.toml",
        )

    def client(self, name: str, *extra: str, cgroup: Path | None = None) -> subprocess.Popen[str]:
        # A script named after the service: the daemon names a python process by
        # the script it runs (``python …/capped-a`` is service ``capped-a``).
        script = self.dir / "bin" / name
        script.parent.mkdir(exist_ok=True)
        script.write_text(
            "from tests.support.budget_client import main\nraise SystemExit(main())\n"
        )
        argv = [
            sys.executable,
            str(script),
            "--name",
            name,
            "--base-url",
            str(self.standin.info["base_url"]),
            "--ca",
            str(self.standin.info["ca"]),
            *extra,
        ]
        if cgroup is not None:
            argv = ["/bin/sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )

    def budget(self, name: str) -> dict[str, Any]:
        return next(b for b in self.daemon.api("/api/budgets")["budgets"] if b["name"] == name)


def _lines(proc: subprocess.Popen[str], timeout: float = 120) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with (
        tempfile.TemporaryDirectory() as tmp,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", tmp) as standin,
    ):
        hook = WebhookReceiver()
        path = Path(tmp)
        (path / "config.toml").write_text(CONFIG.format(hook=hook.url))
        e = Env(standin=standin, hook=hook, dir=path, daemon=None)  # type: ignore[arg-type]
        e.start()
        try:
            yield e
        finally:
            if e.daemon.proc.poll() is None:
                e.daemon.stop()
            hook.close()


def _one_call(env: Env, name: str, cgroup: Path | None = None) -> dict[str, Any]:
    lines = _lines(env.client(name, "--calls", "1", "--stop-after-errors", "1", cgroup=cgroup))
    assert len(lines) == 1
    return lines[0]


def test_rolling_window_block_lifts_by_itself(env: Env) -> None:
    lines = _lines(env.client("capped-b", "--calls", "40", "--interval", "0.05"))
    first_error = next(i for i, line in enumerate(lines) if not line["ok"])
    assert first_error >= 4, lines  # 3 calls are under the limit
    assert all(not line["ok"] for line in lines[first_error:])
    assert {line["error"] for line in lines[first_error:]} == {"APIConnectionError"}
    assert env.budget("capped-roll")["state"] == "blocked"
    # Nobody resets it: the 1 m window moves past the calls and the block lifts.
    _wait(lambda: env.budget("capped-roll")["state"] == "ok", 150, "the rolling window to lift")
    assert _one_call(env, "capped-b")["ok"]
    log = env.daemon.api("/api/budgets")["log"]
    lifts = [r for r in log if r["budget"] == "capped-roll" and not r["active"]]
    assert lifts and lifts[0]["reason"] == "rolling window moved on"


def test_pause_stops_the_process_and_resume_continues_it(env: Env) -> None:
    proc = env.client("pause-me", "--calls", "10", "--interval", "0.1")
    _wait(lambda: _state(proc.pid) == "T", 60, "the service to be stopped")
    assert env.budget("paused")["state"] == "paused"
    assert proc.pid in env.daemon.api("/api/budgets")["enforcement"]["paused_pids"]
    run = env.daemon.cli("resume", "paused")
    assert run.returncode == 0, run.stderr
    lines = _lines(proc)
    assert [line["i"] for line in lines] == list(range(10))
    assert all(line["ok"] for line in lines)
    assert len({line["text"] for line in lines}) == 1  # every reply whole and the same
    log = [r for r in env.daemon.api("/api/budgets")["log"] if r["budget"] == "paused"]
    assert [(r["action"], r["active"]) for r in log] == [("pause", False), ("pause", True)]
    assert log[0]["reason"] == "resumed by an operator"


def test_unit_scope_blocks_its_cgroup_until_reset(env: Env) -> None:
    unit = f"lumen-budget-{uuid.uuid4().hex[:8]}.scope"
    cgroup = CGROUP_ROOT / unit
    cgroup.mkdir()
    try:
        env.daemon.post(
            "/api/budgets",
            {
                "name": "unit-cap",
                "scope": "unit",
                "match": unit,
                "period": "day",
                "limit_usd": "0.00003",
                "thresholds": [100],
                "action": "block",
            },
        )
        lines = _lines(
            env.client("unit-agent", "--calls", "40", "--interval", "0.05", cgroup=cgroup)
        )
        assert lines[-1]["error"] == "APIConnectionError" and lines[0]["ok"]
        data = env.daemon.api("/api/budgets")
        assert os.stat(cgroup).st_ino in data["enforcement"]["blocked_cgroups"]
        # Another program in that cgroup is refused too; the same name elsewhere is not.
        assert _one_call(env, "free-agent", cgroup)["error"] == "APIConnectionError"
        assert _one_call(env, "unit-agent")["ok"]
        assert env.daemon.cli("budgets", "reset", "unit-cap").returncode == 0
        assert _one_call(env, "unit-agent", cgroup)["ok"]
        assert env.daemon.cli("budgets", "remove", "unit-cap").returncode == 0
    finally:
        for _ in range(100):
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_manual_kill_switch_closes_keepalive_and_refuses_until_unblocked(env: Env) -> None:
    proc = env.client(
        "free-agent", "--calls", "400", "--interval", "0.05", "--stop-after-errors", "2"
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # one call done: its connection is open
    assert first["ok"]
    run = env.daemon.cli("block", "--service", "free-agent", "--reason", "runaway agent")
    assert run.returncode == 0, run.stderr
    lines = [first, *_lines(proc)]
    assert len(lines) < 400  # it was stopped, not allowed to finish
    assert [line["error"] for line in lines[-2:]] == ["APIConnectionError"] * 2
    data = env.daemon.api("/api/budgets")
    assert data["manual_blocks"] == {"manual:service:free-agent": "runaway agent"}
    assert "free-agent" in data["enforcement"]["blocked_comms"]
    assert _one_call(env, "free-agent")["error"] == "APIConnectionError"
    run = env.daemon.cli("unblock", "--service", "free-agent")
    assert run.returncode == 0, run.stderr
    assert _one_call(env, "free-agent")["ok"]
    log = [
        r
        for r in env.daemon.api("/api/budgets")["log"]
        if r["budget"] == "manual:service:free-agent"
    ]
    assert [(r["active"], r["reason"]) for r in log] == [
        (False, "unblocked"),
        (True, "runaway agent"),
    ]


def test_call_in_flight_at_block_completes_and_counts_as_overshoot(env: Env) -> None:
    # Two processes of one service: a slow stream (400 ms between events) is in
    # flight while the other's plain calls cross the limit.
    slow = env.client(
        "inflight-a", "--stream", "--scenario", "gap_ms=400", "--calls", "2", "--step"
    )
    assert slow.stdout is not None and slow.stdin is not None
    assert json.loads(slow.stdout.readline()) == {"streaming": True}
    fast = _lines(env.client("inflight-a", "--calls", "40", "--interval", "0.05"))
    done = next(i for i, line in enumerate(fast) if not line["ok"])
    assert done >= 4, fast  # 3 calls are under the limit
    assert {line["error"] for line in fast[done:]} == {"APIConnectionError"}
    first = json.loads(slow.stdout.readline())
    assert first["ok"] and first["tokens"] == fast[0]["tokens"], first  # not cut
    block = next(
        r
        for r in env.daemon.api("/api/budgets")["log"]
        if r["budget"] == "inflight" and r["active"]
    )
    assert first["start_ns"] < block["at_ns"] < first["end_ns"]  # it was in flight

    # Its connection is closed once its event is in; then the next call fails.
    def streamed() -> list[dict[str, Any]]:
        events = env.daemon.api("/api/events", service="inflight-a", limit=100)["events"]
        return [e for e in events if e["pid"] == slow.pid]

    _wait(lambda: len(streamed()) == 1, 30, "the streamed call's event")
    _wait(
        lambda: slow.pid not in env.daemon.api("/api/budgets")["enforcement"]["inflight_pids"],
        30,
        f"its connections to close: {env.daemon.api('/api/budgets')['enforcement']}",
    )
    slow.stdin.write("go\n")
    slow.stdin.flush()
    rest = [line for line in _lines(slow) if "i" in line]
    assert [(line["i"], line["error"]) for line in rest] == [(1, "APIConnectionError")]
    (event,) = streamed()
    assert event["stream"] and event["output_tokens"] == 12
    assert event["input_tokens"] + event["output_tokens"] == first["tokens"]
    status = env.budget("inflight")
    # Spent: the plain calls and the streamed one (the same price each), all counted.
    assert status["spent_usd"] == pytest.approx(status["requests"] * event["cost_usd"])
    assert status["overshoot_usd"] == pytest.approx(status["spent_usd"] - 0.00003)
    assert status["overshoot_usd"] > event["cost_usd"]
    print(f"overshoot with a call in flight: ${status['overshoot_usd']:.8f}")
    # Lift it: the block's pids are of exited processes, which a later test's may reuse.
    assert env.daemon.cli("budgets", "reset", "inflight").returncode == 0


def test_block_alerts_restart_and_kill9(env: Env) -> None:
    capped = env.client("capped-a", "--calls", "60", "--interval", "0.05")
    free = env.client(
        "free-agent", "--calls", "60", "--interval", "0.05", "--stop-after-errors", "1"
    )
    capped_lines, free_lines = _lines(capped), _lines(free)
    first_error = next(i for i, line in enumerate(capped_lines) if not line["ok"])
    assert first_error >= 6, capped_lines  # 5 calls are under the limit
    assert {line["error"] for line in capped_lines[first_error:]} == {"APIConnectionError"}
    # The uncapped service, calling the same endpoint at the same time, never failed.
    assert len(free_lines) == 60 and all(line["ok"] for line in free_lines)
    status = env.budget("capped-day")
    assert status["state"] == "blocked" and status["spent_usd"] > status["limit_usd"]
    assert status["overshoot_usd"] == pytest.approx(status["spent_usd"] - status["limit_usd"])
    # A new process of that service is refused at connect().
    assert _one_call(env, "capped-a")["error"] == "APIConnectionError"

    def thresholds() -> list[int]:
        return sorted(
            b["threshold"]
            for b in env.hook.bodies("/json")
            if b["budget"] == "capped-day" and b["kind"] == "threshold"
        )

    _wait(lambda: thresholds() == [50, 80, 100], 30, "the 50/80/100% alerts")
    kinds = [b["kind"] for b in env.hook.bodies("/json") if b["budget"] == "capped-day"]
    assert kinds.count("block_applied") == 1
    json_hook = next(p for p in env.hook.posts if p[0] == "/json")
    assert json_hook[1]["x-token"] == "t0k" and json_hook[1]["idempotency-key"]
    slack = [b["text"] for b in env.hook.bodies("/slack") if "capped-day" in b["text"]]
    mine = [b for b in env.hook.bodies("/json") if b["budget"] == "capped-day"]
    assert len(slack) == len(mine) and "top models: gpt-4o-mini $0.0000" in slack[-1]
    assert "of $0.00005 (" in slack[-1]

    # Restart: the state holds and no alert is sent twice.
    spent = status["spent_usd"]
    assert env.daemon.stop() == 0
    env.start()
    again = env.budget("capped-day")
    assert again["state"] == "blocked" and again["spent_usd"] == spent
    assert _one_call(env, "capped-a")["error"] == "APIConnectionError"
    time.sleep(1.0)  # give a wrongly repeated alert the time to arrive
    assert thresholds() == [50, 80, 100]
    assert [b["kind"] for b in env.hook.bodies("/json") if b["budget"] == "capped-day"].count(
        "block_applied"
    ) == 1

    # kill -9: the guard's links and the pause watchdog's pipe die with the daemon.
    paused = env.client("pause-two", "--calls", "8", "--interval", "0.1")
    _wait(lambda: _state(paused.pid) == "T", 60, "pause-two to be stopped")
    os.kill(env.daemon.proc.pid, signal.SIGKILL)
    env.daemon.proc.wait(10)
    assert _one_call(env, "capped-a")["ok"]
    lines = _lines(paused, timeout=60)
    assert [line["i"] for line in lines] == list(range(8)) and all(line["ok"] for line in lines)
