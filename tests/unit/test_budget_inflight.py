"""Calls in flight at a block: which connections close now and which wait (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumen_sniff.budgets.inflight import DEFAULT_GRACE_S, Deferral
from lumen_sniff.config import load_settings
from lumen_sniff.errors import ConfigError
from lumen_sniff.model import ConnKey, Direction
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.unit.test_pipeline import CHAT, OPENAI_OK, Wire, _events, _request, _response

T0 = 1_795_441_565_000_000_000


def test_idle_processes_close_at_once_busy_ones_wait() -> None:
    d = Deferral(grace_s=120)
    assert d.due({1, 2, 3}, {2: 1, 3: 0}, now=10.0) == {1, 3}
    assert d.waiting == {2: 130.0}
    assert d.poll({1, 2, 3}, {2: 1}, now=20.0) == set()  # still streaming
    assert d.poll({1, 2, 3}, {}, now=21.0) == {2}  # its call ended
    assert d.waiting == {}


def test_ceiling_closes_a_hung_stream_and_keeps_the_first_deadline() -> None:
    d = Deferral(grace_s=5)
    assert d.due({7}, {7: 1}, now=0.0) == set()
    assert d.due({7}, {7: 1}, now=3.0) == set()  # a second block does not extend it
    assert d.waiting == {7: 5.0}
    assert d.poll({7}, {7: 2}, now=5.0) == {7}


def test_a_lifted_block_forgets_its_waiting_process() -> None:
    d = Deferral()
    assert d.due({7}, {7: 1}, now=0.0) == set()
    assert d.waiting == {7: DEFAULT_GRACE_S}
    assert d.poll(set(), {7: 1}, now=1.0) == set()
    assert d.waiting == {}


def test_zero_grace_closes_everything_at_once() -> None:
    assert Deferral(grace_s=0).due({1, 2}, {1: 3, 2: 1}, now=0.0) == {1, 2}


def test_pipeline_counts_open_exchanges_per_process() -> None:
    pipeline = Pipeline(PipelineSettings())
    wire = Wire()
    req = _request("api.openai.com", "/v1/chat/completions", CHAT, "Authorization: Bearer sk-x")
    a1, a2 = ConnKey(source="bpf", pid=10, handle=1), ConnKey(source="bpf", pid=10, handle=2)
    b = ConnKey(source="bpf", pid=20, handle=1)
    for conn in (a1, a2, b):
        pipeline.feed(wire.chunk(conn, Direction.EGRESS, T0, req))
    assert pipeline.open_by_pid() == {10: 2, 20: 1}
    # b's response ends its exchange: the event is out and b is no longer busy.
    out = pipeline.feed(wire.chunk(b, Direction.INGRESS, T0 + 1, _response(OPENAI_OK)))
    assert len(_events(out)) == 1
    assert pipeline.open_by_pid() == {10: 2}


def test_grace_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[enforcement]\ninflight_grace_s = 30\n")
    assert load_settings(path).budgets.inflight_grace_s == 30.0  # type: ignore[attr-defined]
    path.write_text("[enforcement]\n")
    assert load_settings(path).budgets.inflight_grace_s == 120.0  # type: ignore[attr-defined]
    path.write_text('[enforcement]\ninflight_grace_s = "soon"\n')
    with pytest.raises(ConfigError, match="inflight_grace_s"):
        load_settings(path)
