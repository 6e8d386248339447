"""Real agents with stripped, statically linked BoringSSL (Bun executables), through eBPF.

Claude Code (two versions far apart) and Bun's own ``fetch`` call the TLS
stand-in. The functions are located without symbols (capture/bpf/boringssl.py);
each run's events must equal, field for field (usage and cost exact), what the
stand-in's own record of the same connections gives through the same pipeline.

Codex CLI calls through rustls (statically linked Rust), which is not hooked:
it must be listed as skipped with that reason, and still be unharmed.

No harm: each agent first runs several times before this module starts the
capture (the module sorts before the other eBPF modules, so the shared capture is
not yet running), then as many times under it; output and exit code must match.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lumen_sniff.model import Chunk, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.conftest import require_or_skip
from tests.support.agents import AGENTS, CODEX, Agent, load_records
from tests.support.bpfcap import (
    Collector,
    Server,
    TestCgroup,
    bpf_ready,
    shared_capture,
    spawn_server,
)

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

RUNS = 3
"""Runs of each agent without and with the capture."""

_FIELDS = ("provider", "model", "stream", "status", "input_tokens", "output_tokens",
           "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd",
           "usage_source")  # fmt: skip


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[Server, Path]]:
    with tempfile.TemporaryDirectory() as work:
        rec = Path(work) / "rec"
        rec.mkdir()
        args = ("--tls", "--port", "0", "--ca-dir", work, "--record-dir", str(rec))
        with spawn_server("tests.support.standin", *args) as server:
            yield server, rec


def _run(agent: Agent, server: Server, argv_wrap: Any = None) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as home:
        env = agent.env(base_url=str(server.info["base_url"]), ca=str(server.info["ca"]), home=home)
        argv = agent.argv() if argv_wrap is None else argv_wrap(*agent.argv())
        run = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout


@pytest.fixture(scope="module")
def baselines(standin: tuple[Server, Path]) -> dict[str, list[tuple[int, str]]]:
    """Each installed agent's output and exit code before the capture runs."""
    server, _ = standin
    agents = (*AGENTS, CODEX)
    return {a.name: [_run(a, server) for _ in range(RUNS)] for a in agents if a.path.exists()}


@pytest.fixture(scope="module")
def collector(baselines: dict[str, list[tuple[int, str]]]) -> Collector:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    return shared_capture()


def _hooked(collector: Collector, path: Path) -> dict[str, Any] | None:
    for entry in collector.capture.status()["hooked"]:
        try:
            if os.path.samefile(entry["path"], path):
                return dict(entry)
        except OSError:
            continue
    return None


def _events(chunks: list[Chunk]) -> list[UsageEvent]:
    pipeline = Pipeline(PipelineSettings())
    outs = [o for c in chunks for o in pipeline.feed(c)] + pipeline.close()
    return [o for o in outs if isinstance(o, UsageEvent)]


def _view(events: list[UsageEvent]) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(getattr(e, f)) for f in _FIELDS) for e in events)


def _closed(chunks: list[Chunk]) -> bool:
    conns = {c.conn for c in chunks}
    return bool(conns) and conns == {c.conn for c in chunks if c.closed}


def _captured_run(
    agent: Agent, server: Server, collector: Collector
) -> tuple[int, str, list[UsageEvent]]:
    """One run in a fresh cgroup: exit code, output, and the events of its chunks."""
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        rc, out = _run(agent, server, cg.argv)

        def ours(c: Chunk) -> bool:
            return c.process is not None and c.process.cgroup_id == cg.cgroup_id

        collector.wait_for(_closed, of=ours, timeout_s=10)
        time.sleep(0.05)
        conns = {c.conn for c in collector.chunks(ours)}
        return rc, out, _events(collector.chunks(lambda c: c.conn in conns))
    finally:
        cg.remove()


@pytest.mark.parametrize("agent", AGENTS, ids=lambda a: f"{a.name}-{a.version}")
def test_agent_usage_exact_and_unharmed(
    agent: Agent,
    standin: tuple[Server, Path],
    baselines: dict[str, list[tuple[int, str]]],
    collector: Collector,
) -> None:
    require_or_skip(agent.path.exists(), f"{agent.path} missing: run `make setup-test`")
    server, rec = standin
    # A first run makes discovery locate and hook the binary; the measured runs
    # then start with the probes in place (the first call can come before a
    # cold locate finishes, see the README's limits).
    _run(agent, server)
    deadline = time.monotonic() + 30
    while (hooked := _hooked(collector, agent.path)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hooked is not None, collector.capture.status()["skipped"]
    assert hooked["library"] == "boringssl-static" and not hooked["error"], hooked
    assert set(hooked["probes"]) >= {"SSL_write", "SSL_write:ret", "SSL_read", "SSL_read:ret"}

    for i in range(RUNS):
        for old in rec.glob("conn-*.json"):
            old.unlink()
        rc, out, captured = _captured_run(agent, server, collector)
        assert (rc, out) == baselines[agent.name][i], "output or exit code changed under capture"
        deadline = time.monotonic() + 10
        while not list(rec.glob("conn-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = _events(load_records(rec))
        assert expected, "the stand-in recorded no LLM call"
        assert all(e.usage_source is UsageSource.REPORTED and e.input_tokens > 0
                   and e.cost_usd is not None for e in expected)  # fmt: skip
        assert _view(captured) == _view(expected)
        assert all(e.pid is not None for e in captured)


def test_codex_reported_unhooked_with_reason_and_unharmed(
    standin: tuple[Server, Path],
    baselines: dict[str, list[tuple[int, str]]],
    collector: Collector,
) -> None:
    require_or_skip(CODEX.path.exists(), f"{CODEX.path} missing: run `make setup-test`")
    server, rec = standin
    for i in range(RUNS):
        for old in rec.glob("conn-*.json"):
            old.unlink()
        rc, out, captured = _captured_run(CODEX, server, collector)
        assert (rc, out) == baselines[CODEX.name][i], "output or exit code changed under capture"
        assert rc == 0 and "Stand-in reply" in out, out
        deadline = time.monotonic() + 10
        while not list(rec.glob("conn-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = _events(load_records(rec))
        assert expected and all(e.usage_source is UsageSource.REPORTED for e in expected)
        assert captured == [], "rustls is not hooked: nothing may be captured"
    skipped = [s for s in collector.capture.status()["skipped"] if _same(s["path"], CODEX.path)]
    assert len(skipped) == 1 and skipped[0]["reason"].startswith("rustls"), skipped


def _same(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
