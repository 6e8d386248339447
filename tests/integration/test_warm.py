"""``lumen-sniff warm`` (run by ``make setup``): a real compile into a private cache,
then a real daemon start that compiles nothing; and failing open where bcc is broken.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, bpf_ready
from tests.support.daemonproc import start_daemon

pytestmark = [pytest.mark.bpf, pytest.mark.slow]


def _warm(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lumen_sniff", "warm", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, **env},
        check=False,
    )


def _lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    assert run.returncode == 0, run.stderr[-2000:]
    return [line for line in run.stdout.splitlines() if line.startswith("BPF object cache: ")]


def test_warm_fills_the_cache_the_first_start_then_reads(tmp_path: Path) -> None:
    require_or_skip(*bpf_ready())
    cache = tmp_path / "cache"
    config = tmp_path / "config.toml"
    config.write_text(f'[capture]\nbpf_cache_dir = "{cache}"\n')
    first = _lines(_warm(config))
    assert [line.split()[3:5] for line in first] == [
        ["capture", "compiled"],
        ["sockets", "compiled"],
        ["guard", "compiled"],
    ], first
    files = sorted(p.name for p in cache.iterdir())
    # The kernel's verdict on the copy budget's judge is recorded too: the first
    # start loads lazily instead of verifying every probe.
    assert [f.split("-")[0] + f[f.rindex(".") :] for f in files] == [
        "capture.accepted",
        "capture.json",
        "guard.json",
        "sockets.json",
    ], files
    again = _lines(_warm(config))
    assert [line.split()[3:6] for line in again] == [
        [name, "already", "cached"] for name in ("capture", "sockets", "guard")
    ], again
    daemon = start_daemon(tmp_path / "state" / "lumen.db", tmp_path / "daemon.log", config=config)
    try:
        assert daemon.api("/api/status")["ready"]
    finally:
        assert daemon.stop() == 0
    log = (tmp_path / "daemon.log").read_text()
    assert "(program cached in" in log, log[-2000:]
    assert sorted(p.name for p in cache.iterdir()) == files  # nothing compiled anew


def test_warm_fails_open_where_bcc_is_broken(tmp_path: Path) -> None:
    require_or_skip(*bpf_ready())
    broken = tmp_path / "broken"
    (broken / "bcc").mkdir(parents=True)
    (broken / "bcc" / "__init__.py").write_text('raise ImportError("bcc deliberately broken")\n')
    config = tmp_path / "config.toml"
    config.write_text(f'[capture]\nbpf_cache_dir = "{tmp_path / "cache"}"\n')
    lines = _lines(_warm(config, PYTHONPATH=str(broken)))
    assert len(lines) == 1, lines
    assert lines[0].startswith("BPF object cache: not warmed, eBPF is unavailable here ("), lines
    assert "bcc deliberately broken" in lines[0]
    assert not any((tmp_path / "cache").glob("*.json"))
