"""Calls in flight at a block: which connections close now and which wait (pure parts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumen_sniff.budgets.inflight import DEFAULT_GRACE_S, Deferral
from lumen_sniff.config import load_settings
from lumen_sniff.errors import ConfigError
from lumen_sniff.model import Chunk, ConnKey, Direction, UsageEvent
from lumen_sniff.pipeline import Pipeline, PipelineSettings

T0 = 1_795_441_565_000_000_000
_BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n"
    b"Authorization: Bearer sk-x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)
_ANSWER = (
    b'{"model": "gpt-4o-mini-2024-07-18", "object": "chat.completion", "choices": [], '
    b'"usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}'
)
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_ANSWER), _ANSWER)
)


def _chunk(conn: ConnKey, direction: Direction, data: bytes) -> Chunk:
    return Chunk(conn=conn, direction=direction, offset=0, ts_ns=T0, data=data)


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
    a1, a2 = ConnKey(source="bpf", pid=10, handle=1), ConnKey(source="bpf", pid=10, handle=2)
    b = ConnKey(source="bpf", pid=20, handle=1)
    for conn in (a1, a2, b):
        pipeline.feed(_chunk(conn, Direction.EGRESS, _REQUEST))
    assert pipeline.open_by_pid() == {10: 2, 20: 1}
    # b's response ends its exchange: the event is out and b is no longer busy.
    out = pipeline.feed(_chunk(b, Direction.INGRESS, _RESPONSE))
    assert [type(o) for o in out] == [UsageEvent]
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
