"""The copy budget on a real kernel: non-LLM HTTP/1 connections are copied only up to it,
LLM requests never lose a byte to it (big bodies, the model last, many writes or one).

A raw Python ``ssl`` client (``tests.support.bulkclient``) talks to the TLS
stand-in; the shared capture runs with the daemon's path needles and budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from lumen_sniff.model import Chunk, Direction, UsageEvent
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.support.bpfcap import (
    REPO,
    Collector,
    Server,
    TestCgroup,
    spawn_server,
)

pytestmark = pytest.mark.bpf


def _run(
    collector: Collector, standin: Server, *flags: str
) -> tuple[dict[str, object], list[Chunk]]:
    """Run the bulk client in a fresh cgroup; its result and every Chunk of its connection."""
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        argv = [sys.executable, "-m", "tests.support.bulkclient", "--port"]
        argv += [str(standin.info["port"]), "--ca", str(standin.info["ca"]), *flags]
        run = subprocess.run(cg.argv(*argv), capture_output=True, text=True, timeout=120, cwd=REPO)
        assert run.returncode == 0, run.stderr[-2000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
        pid = int(result["pid"])
        ours = lambda c: c.conn.pid == pid  # noqa: E731
        chunks = collector.wait_for(lambda cs: any(c.closed for c in cs), of=ours)
    finally:
        cg.remove()
    assert chunks and chunks[-1].closed, "the connection's close was not seen"
    return result, chunks


def _copied(chunks: list[Chunk], direction: Direction) -> int:
    return sum(len(c.data) for c in chunks if c.direction is direction)


def _usage_events(chunks: list[Chunk]) -> list[UsageEvent]:
    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in chunks for out in pipeline.feed(chunk)] + pipeline.close()
    return [e for e in outputs if isinstance(e, UsageEvent)]


def test_non_llm_upload_is_copied_only_up_to_the_budget(
    collector: Collector, standin: Server
) -> None:
    budget = collector.capture.settings.budget_bytes
    before = collector.capture.budget_skipped()
    upload = 8 << 20
    result, chunks = _run(collector, standin, "--put-kib", str(upload >> 10), "--host",
                          "objects.internal")  # fmt: skip
    assert result["statuses"] == [404]
    assert _copied(chunks, Direction.EGRESS) <= budget
    assert _copied(chunks, Direction.INGRESS) <= budget
    # The head was copied (user space can still judge the connection) ...
    first = min((c for c in chunks if c.direction is Direction.EGRESS), key=lambda c: c.offset)
    assert first.offset == 0 and first.data.startswith(b"PUT /bucket/backup-0001.tar HTTP/1.1")
    # ... the rest is a counted gap, not a loss: the close says where the stream ended.
    after = collector.capture.budget_skipped()
    assert after["bytes"] - before["bytes"] >= upload - budget
    assert chunks[-1].offset > upload
    assert "budget" not in collector.capture.drops()


def test_non_http_connection_is_copied_only_for_its_first_call(
    collector: Collector, standin: Server
) -> None:
    # A first write that cannot start HTTP (first byte not A-Z): that call is
    # copied for user space to judge, the rest only counted.
    before = collector.capture.budget_skipped()
    result, chunks = _run(collector, standin, "--raw-kib", "256")
    assert result["statuses"] == []
    egress = [c for c in chunks if c.direction is Direction.EGRESS and c.data]
    assert [(c.offset, len(c.data)) for c in egress] == [(0, 16384)]
    assert egress[0].data == b"x" * 16384
    assert _copied(chunks, Direction.INGRESS) == 0
    after = collector.capture.budget_skipped()
    assert after["bytes"] - before["bytes"] >= (256 << 10) - 16384
    assert "budget" not in collector.capture.drops()


def test_llm_body_after_a_spent_budget_is_copied_whole(
    collector: Collector, standin: Server
) -> None:
    # Keep-alive: a big non-LLM PUT spends the budget, then the same connection
    # posts a 300 KB chat request whose model comes last, in 16 KiB writes.
    result, chunks = _run(collector, standin, "--put-kib", "256", "--llm-kib", "300")
    assert result["statuses"] == [404, 200]
    events = _usage_events(chunks)
    assert len(events) == 1, events
    event = events[0]
    usage = result["usage"]
    assert isinstance(usage, dict)
    assert event.model == result["model"]
    assert (event.input_tokens, event.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert event.complete


@pytest.mark.parametrize("write", [16384, 1 << 20], ids=["16KiB-writes", "one-write"])
def test_300kb_llm_body_with_the_model_last_gives_exact_usage(
    collector: Collector, standin: Server, write: int
) -> None:
    result, chunks = _run(collector, standin, "--llm-kib", "300", "--write", str(write))
    assert result["statuses"] == [200]
    events = _usage_events(chunks)
    assert len(events) == 1, events
    usage = result["usage"]
    assert isinstance(usage, dict)
    assert events[0].model == result["model"]
    assert (events[0].input_tokens, events[0].output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert _copied(chunks, Direction.EGRESS) > int(result["body_bytes"])  # type: ignore[call-overload]


@pytest.fixture
def hooked_standin(collector: Collector) -> Iterator[Server]:
    """The TLS stand-in inside a watched cgroup: its (server) side is captured too."""
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        with tempfile.TemporaryDirectory() as ca_dir:
            args = ["tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir]
            with spawn_server(*args, wrap=cg.argv) as server:
                yield server
    finally:
        cg.remove()


def _server_chunks(collector: Collector, server: Server, client_pid: int) -> list[Chunk]:
    """The server's side of the one connection ``client_pid`` made, up to its close."""
    pid = server.proc.pid
    ours = lambda c: c.conn.pid == pid  # noqa: E731
    chunks = collector.wait_for(lambda cs: any(c.closed for c in cs), of=ours)
    conn = next(c.conn for c in chunks if c.closed)
    assert client_pid != pid
    return [c for c in chunks if c.conn == conn]


def test_hooked_server_side_of_a_non_llm_upload_is_budgeted(
    collector: Collector, hooked_standin: Server
) -> None:
    # The server's first bytes are ingress (SSL_read of the request): judged too.
    budget = collector.capture.settings.budget_bytes
    before = collector.capture.budget_skipped()
    upload = 8 << 20
    result, _client = _run(collector, hooked_standin, "--put-kib", str(upload >> 10), "--host",
                           "objects.internal")  # fmt: skip
    assert result["statuses"] == [404]
    chunks = _server_chunks(collector, hooked_standin, int(result["pid"]))  # type: ignore[call-overload]
    assert _copied(chunks, Direction.INGRESS) <= budget
    assert _copied(chunks, Direction.EGRESS) <= budget
    first = min((c for c in chunks if c.direction is Direction.INGRESS), key=lambda c: c.offset)
    assert first.offset == 0 and first.data.startswith(b"PUT /bucket/backup-0001.tar HTTP/1.1")
    after = collector.capture.budget_skipped()
    # Both ends skipped (the client's egress and the server's ingress).
    assert after["bytes"] - before["bytes"] >= 2 * (upload - budget)


def test_hooked_server_reads_an_llm_request_after_a_spent_budget_whole(
    collector: Collector, hooked_standin: Server
) -> None:
    # Keep-alive on the server's side: a big PUT spends the budget, then a
    # 300 KB chat request (model last) must reach the server's capture whole.
    result, _client = _run(collector, hooked_standin, "--put-kib", "256", "--llm-kib", "300")
    assert result["statuses"] == [404, 200]
    chunks = _server_chunks(collector, hooked_standin, int(result["pid"]))  # type: ignore[call-overload]
    ingress = sorted(
        (c for c in chunks if c.direction is Direction.INGRESS), key=lambda c: c.offset
    )
    at = next(i for i, c in enumerate(ingress) if c.data.startswith(b"POST /v1/chat/completions"))
    request = bytearray()
    for chunk in ingress[at:]:  # from the request line on: every byte, no gap
        assert chunk.offset == ingress[at].offset + len(request) and not chunk.lost_bytes
        request += chunk.data
    body_bytes = int(result["body_bytes"])  # type: ignore[call-overload]
    _head, _, body = bytes(request).partition(b"\r\n\r\n")
    assert len(body) >= body_bytes
    assert json.loads(body[:body_bytes])["model"] == result["model"]
