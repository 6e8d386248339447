"""Live capture on loopback: real HTTP to the plaintext stand-in, Chunks out."""

from __future__ import annotations

import json
import os
import queue
import time
import urllib.request
from collections.abc import Iterator

import pytest

from lumen_sniff.capture.pcap.sniffer import Sniffer, port_filter
from lumen_sniff.model import Chunk, Direction
from tests.conftest import require_or_skip
from tests.support.standin import StandinServer, running_standin

BODY = json.dumps({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}],
                   "stream": False}).encode()  # fmt: skip


def _libpcap_ok() -> bool:
    try:
        from scapy.libs import winpcapy  # noqa: F401  (loads libpcap.so)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    require_or_skip(os.geteuid() == 0, "live capture needs root")
    require_or_skip(_libpcap_ok(), "libpcap is not installed")
    with running_standin(tls=False) as server:
        yield server


def _post(port: int) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/chat", data=BODY,
        headers={"content-type": "application/json", "connection": "close"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def _drain(chunks: queue.Queue[Chunk]) -> list[Chunk]:
    out = []
    while True:
        try:
            out.append(chunks.get_nowait())
        except queue.Empty:
            return out


def test_port_filter() -> None:
    assert port_filter((11434, 8000)) == "tcp port 11434 or tcp port 8000"


def test_loopback_exchange_becomes_ordered_chunks(standin: StandinServer) -> None:
    sniffer = Sniffer("lo", (standin.port,))
    sniffer.start()
    try:
        time.sleep(0.2)
        answer = _post(standin.port)
        time.sleep(0.3)
    finally:
        sniffer.stop()
    chunks = _drain(sniffer.chunks)
    egress = b"".join(c.data for c in chunks if c.direction == Direction.EGRESS)
    ingress = b"".join(c.data for c in chunks if c.direction == Direction.INGRESS)
    assert egress.startswith(b"POST /api/chat HTTP/1.1\r\n")
    assert egress.endswith(b"\r\n\r\n" + BODY)
    assert ingress.startswith(b"HTTP/1.1 200 ")
    assert ingress.endswith(answer)
    assert {c.conn.source for c in chunks} == {"pcap"}
    assert {c.peer for c in chunks} == {("127.0.0.1", standin.port)}
    assert [c.closed for c in chunks].count(True) == 1 and chunks[-1].closed
    status = sniffer.status()
    assert status["linktype"] == 1 and status["dropped"] == {} and status["skipped"] == {}
    assert status["tcp"]["flows"] == 1 and status["tcp"]["closed_fin"] == 1


def test_kernel_filter_keeps_other_ports_out(standin: StandinServer) -> None:
    sniffer = Sniffer("lo", (1,))  # nothing listens there
    sniffer.start()
    try:
        time.sleep(0.2)
        _post(standin.port)
        time.sleep(0.3)
    finally:
        sniffer.stop()
    assert sniffer.frames == 0
    assert _drain(sniffer.chunks) == []


def test_bad_interface_is_a_capture_error() -> None:
    from lumen_sniff.errors import CaptureError

    require_or_skip(_libpcap_ok(), "libpcap is not installed")
    with pytest.raises(CaptureError, match="no-such-if0"):
        Sniffer("no-such-if0", (11434,)).start()


def test_live_capture_through_the_pipeline_gives_the_reported_usage(
    standin: StandinServer,
) -> None:
    from lumen_sniff.pipeline import Pipeline, PipelineSettings

    sniffer = Sniffer("lo", (standin.port,))
    sniffer.start()
    try:
        time.sleep(0.2)
        answer = json.loads(_post(standin.port))
        time.sleep(0.3)
    finally:
        sniffer.stop()
    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in _drain(sniffer.chunks) for out in pipeline.feed(chunk)]
    events = [out for out in outputs + pipeline.close() if hasattr(out, "input_tokens")]
    assert [(e.provider, e.model, e.input_tokens, e.output_tokens, e.usage_source.value)
            for e in events] == [
        ("ollama", answer["model"], answer["prompt_eval_count"], answer["eval_count"], "reported")
    ]  # fmt: skip
