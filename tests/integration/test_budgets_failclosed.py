"""``[enforcement] fail_closed = true``: a block outlives a ``kill -9`` of the daemon.

Its own daemon and stand-in; the kill switch blocks a renamed SDK client. The
pins under /sys/fs/bpf/lumen-sniff/ are removed at the end whatever happens.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, bpf_ready, spawn_server
from tests.support.daemonproc import start_daemon

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

PINS = Path("/sys/fs/bpf/lumen-sniff")


def _call(info: dict[str, Any], name: str) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "tests.support.budget_client",
        "--name",
        name,
        "--base-url",
        str(info["base_url"]),
        "--ca",
        str(info["ca"]),
        "--calls",
        "1",
    ]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_fail_closed_block_survives_kill9_until_the_pins_go() -> None:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with (
        tempfile.TemporaryDirectory() as tmp,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", tmp) as standin,
    ):
        config = Path(tmp) / "config.toml"
        config.write_text("[enforcement]\nfail_closed = true\n")
        daemon = start_daemon(
            Path(tmp) / "db" / "lumen.db",
            Path(tmp) / "daemon.log",
            "--comm",
            "closed-agent",
            config=config,
        )
        try:
            assert _call(standin.info, "closed-agent")["ok"]  # the endpoint is learned
            # No block budget: nothing is attached until the kill switch needs it.
            assert daemon.api("/api/budgets")["enforcement"]["loaded"] is False
            run = daemon.cli("block", "--service", "closed-agent")
            assert run.returncode == 0, run.stderr
            assert sorted(p.name for p in PINS.iterdir()) == ["guard_connect4", "guard_connect6"]
            assert _call(standin.info, "closed-agent")["error"] == "APIConnectionError"
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)
            # The daemon is gone; its pinned links still refuse.
            assert _call(standin.info, "closed-agent")["error"] == "APIConnectionError"
            assert _call(standin.info, "other-agent")["ok"]
        finally:
            if daemon.proc.poll() is None:
                daemon.stop()
            for pin in PINS.glob("*"):
                pin.unlink()
        assert _call(standin.info, "closed-agent")["ok"]  # pins removed: open again
