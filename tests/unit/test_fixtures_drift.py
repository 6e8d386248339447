"""Committed exchange fixtures match a fresh recording (make fixtures), and load as Chunks."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from lumen_sniff.model import Direction
from tests.support.clients import SCENARIOS
from tests.support.fixtures import EXCHANGES_DIR, load_exchange, semantic_view
from tests.support.make_fixtures import PLAIN_PORT, TLS_PORT, record_all


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def _server_side(doc: dict[str, Any]) -> dict[str, Any]:
    """The semantic view without the client's identity and request bytes."""
    view = semantic_view(doc)
    del view["client"]
    for conn in view["connections"]:
        conn.pop("egress", None)
    return view


@pytest.mark.slow
def test_regenerated_fixtures_do_not_drift(tmp_path: Path) -> None:
    if not (_port_free(TLS_PORT) and _port_free(PLAIN_PORT)):
        pytest.fail(f"fixed fixture ports {TLS_PORT}/{PLAIN_PORT} are busy")
    record_all(tmp_path)
    for committed in sorted(EXCHANGES_DIR.glob("*.json")):
        fresh = json.loads((tmp_path / committed.name).read_text())
        old = json.loads(committed.read_text())
        if fresh["client"] != old["client"]:
            # node and curl come from the system, not from pyproject.toml: another
            # version sends other request bytes. The stand-in's answer and the usage
            # the client reported must still be what was committed.
            assert _server_side(fresh) == _server_side(old), f"{committed.name} drifted"
            continue
        assert semantic_view(fresh) == semantic_view(old), f"{committed.name} drifted"
        if old["http_version"] == "1.1":
            # Plaintext HTTP/1.1 exchanges regenerate byte for byte, timestamps included.
            assert fresh == old, f"{committed.name} is not byte-identical"
