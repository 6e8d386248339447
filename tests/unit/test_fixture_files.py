"""Committed exchange fixtures load as Chunks (their regeneration is an integration test)."""

from __future__ import annotations

from lumen_sniff.model import Direction
from tests.support.clients import SCENARIOS
from tests.support.fixtures import EXCHANGES_DIR, load_exchange


def test_every_scenario_has_a_committed_fixture() -> None:
    assert {p.stem for p in EXCHANGES_DIR.glob("*.json")} == set(SCENARIOS)


def test_loader_gives_contiguous_offsets_and_closed_connections() -> None:
    chunks, expected = load_exchange(EXCHANGES_DIR / "openai_chat_stream_usage.json")
    assert expected["input_tokens"] == 13 and expected["output_tokens"] == 12
    assert expected["stream"] is True and expected["status"] == 200
    assert chunks[0].direction is Direction.EGRESS
    assert chunks[0].data.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"sk-standin-FAKE-openai" in chunks[0].data
    ingress = [c for c in chunks if c.direction is Direction.INGRESS]
    assert ingress[0].data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert ingress[-1].data == b"0\r\n\r\n" and ingress[-1].closed
    pos = 0
    for c in ingress:
        assert c.offset == pos
        pos += len(c.data)
    assert [c.ts_ns for c in chunks] == sorted({c.ts_ns for c in chunks})


def test_concurrent_fixture_interleaves_three_connections() -> None:
    chunks, expected = load_exchange(EXCHANGES_DIR / "openai_async_streams.json")
    assert expected["calls"] == 3 and expected["input_tokens"] == 39
    assert [c.conn.handle for c in chunks[:3]] == [1, 2, 3]
    assert sum(c.closed for c in chunks) == 3
