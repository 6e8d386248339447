"""Replay's coalescing and worker split change nothing: the same events, field for field.

The captures interleave several connections that stream OpenAI-style chat
completions (one SSE event per HTTP chunk per TCP segment, as a token stream
looks on the wire), with keep-alive exchanges, an IPv6 connection, a capture
started mid-connection and lost segments; and h2c connections (not coalesced,
since their streams interleave).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from lumen_sniff.capture.pcap.replay import ReplayReport, replay_file
from lumen_sniff.capture.tcp.reassembler import ReassemblySettings
from lumen_sniff.cli.replay import _pipeline_factory
from lumen_sniff.serialize import event_to_dict
from tests.support.make_pcaps import Conversation, frame, write_pcap

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pcap"
TOKENS = 12


def _request(i: int) -> bytes:
    messages = [{"role": "user", "content": f"question {i}"}]
    options = {"include_usage": True}
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "stream_options": options, "messages": messages}
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk-test-0000\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _response(i: int) -> list[bytes]:
    def chunk(text: str) -> bytes:
        data = f"data: {text}\n\n".encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    base = {"id": f"chatcmpl-{i}", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18"}  # fmt: skip
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n"]  # fmt: skip
    for t in range(TOKENS):
        delta = {"choices": [{"index": 0, "delta": {"content": f" w{t}"}, "finish_reason": None}]}
        parts.append(chunk(json.dumps({**base, **delta})))
    usage = {"prompt_tokens": 20 + i, "completion_tokens": TOKENS, "total_tokens": 20 + i + TOKENS}
    parts.append(chunk(json.dumps({**base, "choices": [], "usage": usage})))
    parts.append(chunk("[DONE]") + b"0\r\n\r\n")
    return parts


def _connection(n: int, rnd: random.Random) -> list[list[bytes]]:
    """One connection's steps (lists of packets), ``n`` exchanges on it."""
    v6 = n % 5 == 4
    client = (f"fd00::{n + 1}" if v6 else f"10.0.{n}.1", 40000 + n)
    conv = Conversation(client, ("fd00::2" if v6 else "10.0.0.2", 8080), v6=v6,
                        client_isn=rnd.randrange(2**32))  # fmt: skip
    steps = [] if n % 7 == 6 else [conv.handshake()]  # some start mid-connection
    for k in range(1 + n % 3):  # keep-alive: up to 3 exchanges
        steps.append(conv.send("c", _request(n * 10 + k), mss=rnd.choice([90, 1400])))
        steps += [conv.send("s", part) for part in _response(n * 10 + k)]
    steps.append(conv.fin("c") + conv.fin("s"))
    return steps


def _capture(path: Path, connections: int, seed: int, *, lose: bool = False) -> None:
    rnd = random.Random(seed)
    pending = [_connection(n, rnd) for n in range(connections)]
    packets: list[bytes] = []
    while any(pending):
        steps = rnd.choice([s for s in pending if s])
        packets += steps.pop(0)
    if lose:  # a few lost segments make gaps (and incomplete events)
        for _ in range(3):
            del packets[rnd.randrange(len(packets))]
    ts = 1_700_000_000 * 10**9
    frames = []
    for packet in packets:
        # Mostly fast, now and then a pause longer than the coalescing window.
        ts += 90_000_000 if rnd.random() < 0.03 else rnd.choice([1_000, 20_000, 3_000_000])
        frames.append((ts, frame(1, packet)))
    write_pcap(path, 1, frames)


def _replay(
    path: Path, window_ns: int | None, jobs: int = 1
) -> tuple[list[dict[str, Any]], ReplayReport]:
    events: list[Any] = []
    settings = None if window_ns is None else ReassemblySettings(coalesce_window_ns=window_ns)
    report = replay_file(path, _pipeline_factory(None, None), events.append,
                         reassembly=settings, jobs=jobs)  # fmt: skip
    assert report.error is None
    return [event_to_dict(e) for e in events], report


@pytest.mark.parametrize(("seed", "lose"), [(1, False), (2, False), (3, True)])
def test_coalescing_and_jobs_give_the_same_events(tmp_path: Path, seed: int, lose: bool) -> None:
    path = tmp_path / "streams.pcap"
    _capture(path, 14, seed, lose=lose)
    plain, plain_report = _replay(path, window_ns=0)
    assert len(plain) >= 14 * 2 - 3
    if not lose:
        assert all(e["complete"] and e["output_tokens"] == TOKENS for e in plain)
    coalesced, report = _replay(path, window_ns=None)
    assert coalesced == plain
    assert report.chunks < plain_report.chunks / 2  # the point of it
    assert (report.tcp, report.frames) == (plain_report.tcp, plain_report.frames)
    split, split_report = _replay(path, window_ns=None, jobs=3)
    assert split == plain
    assert (split_report.tcp, split_report.chunks) == (report.tcp, report.chunks)


def test_recorded_fixture_gives_the_same_events_coalesced_or_not() -> None:
    plain, plain_report = _replay(FIXTURES / "plain.pcap", window_ns=0)
    coalesced, report = _replay(FIXTURES / "plain.pcap", window_ns=None)
    assert coalesced == plain and len(plain) == 5
    assert (plain_report.chunks, report.chunks) == (66, 24)


# ------------------------------------------------------------------ HTTP/2


def _h2c_capture(path: Path, *, concurrent: bool) -> None:
    """One h2c (prior knowledge) connection streaming 3 completions, every
    HTTP/2 frame in its own TCP segment 2 ms apart; ``concurrent`` interleaves
    the streams (they end at different times), else they run one after another."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    client = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    server = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    conv = Conversation(("10.0.0.1", 41000), ("10.0.0.2", 8080))
    packets = conv.handshake()

    def flush(side: str) -> None:
        sender, receiver = (client, server) if side == "c" else (server, client)
        data = sender.data_to_send()
        if data:
            receiver.receive_data(data)
            packets.extend(conv.send(side, data))

    client.initiate_connection()
    flush("c")
    server.initiate_connection()
    flush("s")
    flush("c")  # SETTINGS ack

    def request(sid: int) -> None:
        body = json.loads(_request(sid).split(b"\r\n\r\n", 1)[1])
        data = json.dumps(body).encode()
        client.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                  (":authority", "127.0.0.1:8080"),
                                  (":path", "/v1/chat/completions"),
                                  ("content-type", "application/json"),
                                  ("authorization", "Bearer sk-test-0000")])  # fmt: skip
        client.send_data(sid, data, end_stream=True)
        flush("c")
        server.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
        flush("s")

    def events_of(sid: int) -> list[bytes]:
        # The SSE events of _response, without HTTP/1.1 chunk framing.
        return [part.split(b"\r\n", 1)[1][:-2] for part in _response(sid)[1:-1]] + [
            b"data: [DONE]\n\n"
        ]

    sids = [1, 3, 5]
    if concurrent:
        for sid in sids:
            request(sid)
        pending = {sid: events_of(sid)[: TOKENS - 2 * i] + events_of(sid)[TOKENS:]
                   for i, sid in enumerate(sids)}  # fmt: skip
        while pending:
            for sid in list(pending):
                event = pending[sid].pop(0)
                server.send_data(sid, event, end_stream=not pending[sid])
                flush("s")
                if not pending[sid]:
                    del pending[sid]
    else:
        for sid in sids:
            request(sid)
            parts = events_of(sid)
            for n, event in enumerate(parts):
                server.send_data(sid, event, end_stream=n == len(parts) - 1)
                flush("s")
    packets += conv.fin("c") + conv.fin("s")
    ts0 = 1_700_000_000 * 10**9
    write_pcap(path, 1, [(ts0 + i * 2_000_000, frame(1, p)) for i, p in enumerate(packets)])


def test_h2c_streams_one_after_another_give_the_same_events(tmp_path: Path) -> None:
    path = tmp_path / "h2c.pcap"
    _h2c_capture(path, concurrent=False)
    plain, _ = _replay(path, window_ns=0)
    assert [(e["provider"], e["output_tokens"], e["complete"]) for e in plain] == [
        ("openai", TOKENS, True)
    ] * 3
    coalesced, _ = _replay(path, window_ns=None)
    assert coalesced == plain


def test_h2c_is_not_coalesced_so_concurrent_streams_keep_their_times(tmp_path: Path) -> None:
    path = tmp_path / "h2c.pcap"
    _h2c_capture(path, concurrent=True)
    plain, plain_report = _replay(path, window_ns=0)
    assert [(e["output_tokens"], e["complete"]) for e in plain] == [(TOKENS, True)] * 3
    coalesced, report = _replay(path, window_ns=None)
    assert coalesced == plain
    assert report.chunks == plain_report.chunks
    assert len({e["duration_ms"] for e in plain}) == 3  # the streams end at different times
