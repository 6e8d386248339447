"""Connection tracker: ordering, roles, protocol choice, eviction, ignoring, counters."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.model import (
    BodyData,
    Chunk,
    ConnClosed,
    ConnKey,
    Desync,
    Direction,
    HttpEvent,
    MessageEnd,
    ProcessInfo,
    RequestHead,
    ResponseHead,
    Role,
)
from lumen_sniff.protocol.http1.parser import MAX_HEAD_BYTES
from lumen_sniff.protocol.tracker import H2_PREFACE, PROBE_LIMIT_BYTES, ConnectionTracker
from tests.support.httpevents import merge
from tests.support.wire import request_samples, wire_response

OUT, IN = Direction.EGRESS, Direction.INGRESS
K1 = ConnKey(source="bpf", pid=100, handle=0xA)
K2 = ConnKey(source="bpf", pid=100, handle=0xB)
K3 = ConnKey(source="bpf", pid=200, handle=0xA)
GET = b"GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Feeder:
    """Builds Chunks with running offsets per (conn, direction)."""

    def __init__(self, tracker: ConnectionTracker | None = None) -> None:
        self.t = tracker or ConnectionTracker()
        self.offsets: dict[tuple[ConnKey, Direction], int] = {}

    def send(
        self,
        conn: ConnKey,
        d: Direction,
        ts: int,
        data: bytes,
        *,
        lost: int = 0,
        closed: bool = False,
        skip: int = 0,
    ) -> list[HttpEvent]:
        off = self.offsets.get((conn, d), 0) + skip
        self.offsets[(conn, d)] = off + len(data) + lost
        return self.t.feed(
            Chunk(
                conn=conn,
                direction=d,
                offset=off,
                ts_ns=ts,
                data=data,
                lost_bytes=lost,
                closed=closed,
            )
        )


def kinds(events: list[HttpEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_client_side_exchange_and_counters() -> None:
    f = Feeder()
    a = f.send(K1, OUT, 1, GET)
    b = f.send(K1, IN, 2, OK, closed=True)
    assert kinds(a) == ["RequestHead", "MessageEnd"]
    assert a[0] == RequestHead(
        conn=K1,
        stream=1,
        ts_ns=1,
        method="GET",
        target="/v1/models",
        authority="api.openai.com",
        headers=(("host", "api.openai.com"),),
        http_version="1.1",
    )
    assert b == [
        ResponseHead(
            conn=K1,
            stream=1,
            ts_ns=2,
            status=200,
            headers=(("content-length", "2"),),
            http_version="1.1",
        ),
        BodyData(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=2, data=b"ok"),
        MessageEnd(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=2, complete=True),
        ConnClosed(conn=K1, ts_ns=2),
    ]
    assert f.t.stats == {
        "chunks": 2,
        "bytes.egress": len(GET),
        "bytes.ingress": len(OK),
        "gaps": 0,
        "lost_bytes": 0,
        "duplicate_bytes": 0,
        "evictions": 0,
        "ignored_bytes": 0,
        "connections": 1,
    }


def test_process_and_peer_come_from_the_first_chunk() -> None:
    t = ConnectionTracker()
    proc = ProcessInfo(pid=100, comm="python3")
    (head, _end) = t.feed(
        Chunk(
            conn=K1,
            direction=OUT,
            offset=0,
            ts_ns=1,
            data=GET,
            process=proc,
            peer=("10.0.0.1", 443),
        )
    )
    assert isinstance(head, RequestHead)
    assert (head.process, head.peer) == (proc, ("10.0.0.1", 443))


@pytest.mark.parametrize(
    ("first_dir", "first", "second_dir", "second", "streams"),
    [
        (IN, GET, OUT, OK, [("RequestHead", 1), ("ResponseHead", 1)]),
        # Capture began after the request came in: the answer has no request to pair
        # with, so it takes number 1 and the next request number 2.
        (OUT, OK, IN, GET, [("ResponseHead", 1), ("RequestHead", 2)]),
    ],
    ids=["request-on-ingress", "status-on-egress"],
)
def test_server_side_swaps_roles(
    first_dir: Direction,
    first: bytes,
    second_dir: Direction,
    second: bytes,
    streams: list[tuple[str, int]],
) -> None:
    f = Feeder()
    events = f.send(K1, first_dir, 1, first) + f.send(K1, second_dir, 2, second)
    assert f.t.is_server_side(K1)
    heads = [
        (type(e).__name__, e.stream) for e in events if isinstance(e, RequestHead | ResponseHead)
    ]
    assert heads == streams
    assert not f.t.is_server_side(K2)


def test_client_side_is_not_server_side() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, GET)
    assert not f.t.is_server_side(K1)


def test_first_bytes_in_tiny_pieces_are_held_until_they_tell() -> None:
    f = Feeder()
    assert f.send(K1, OUT, 1, b"G") == []
    assert f.send(K1, OUT, 1, b"ET") == []
    events = f.send(K1, OUT, 1, GET[3:])
    assert kinds(events) == ["RequestHead", "MessageEnd"]
    assert f.t.buffered_bytes == 0


def test_offset_jump_is_a_gap_inside_a_content_length_body() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, GET)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    f.send(K1, IN, 2, head + b"0123")
    events = f.send(K1, IN, 3, b"89", skip=4)
    assert events == [
        Desync(conn=K1, stream=1, ts_ns=3, reason="gap", lost_bytes=4),
        BodyData(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=3, data=b"89"),
        MessageEnd(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=3, complete=False, reason="gap"),
    ]
    assert (f.t.stats["gaps"], f.t.stats["lost_bytes"], f.t.stats["desync.gap"]) == (1, 4, 1)


def test_lost_bytes_after_data_are_a_gap() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, GET)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    events = f.send(K1, IN, 2, head + b"0123", lost=6)
    assert events[-2:] == [
        Desync(conn=K1, stream=1, ts_ns=2, reason="gap", lost_bytes=6),
        MessageEnd(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=2, complete=False, reason="gap"),
    ]
    assert f.t.stats["lost_bytes"] == 6


def test_overlap_is_trimmed_and_duplicates_dropped() -> None:
    t = ConnectionTracker()
    t.feed(Chunk(conn=K1, direction=OUT, offset=0, ts_ns=1, data=GET))
    t.feed(Chunk(conn=K1, direction=IN, offset=0, ts_ns=2, data=OK[:30]))
    assert t.feed(Chunk(conn=K1, direction=IN, offset=0, ts_ns=3, data=OK[:30])) == []
    events = t.feed(Chunk(conn=K1, direction=IN, offset=20, ts_ns=4, data=OK[20:]))
    assert kinds(events) == ["ResponseHead", "BodyData", "MessageEnd"]
    assert isinstance(events[1], BodyData) and events[1].data == b"ok"
    assert t.stats["duplicate_bytes"] == 30 + 10


def test_closed_chunk_drops_the_state_but_not_the_server_side_verdict() -> None:
    f = Feeder()
    f.send(K1, IN, 1, GET)
    assert f.t.is_server_side(K1)
    assert f.send(K1, IN, 2, b"", closed=True)[-1] == ConnClosed(conn=K1, ts_ns=2)
    assert f.t.is_server_side(K1)  # the pipeline still asks about this chunk's events
    f.offsets.clear()
    f.send(K1, OUT, 3, GET)  # the key now names a new, client-side connection
    assert not f.t.is_server_side(K1)


class _FakeH2:
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(
        self, conn: ConnKey, process: ProcessInfo | None, peer: Any, *, mid_stream: bool = False
    ) -> None:
        self.log: list[tuple[Role, bytes]] = []
        _FakeH2.made.append({"conn": conn, "mid_stream": mid_stream, "log": self.log})

    def data(self, role: Role, ts_ns: int, data: bytes) -> list[HttpEvent]:
        self.log.append((role, data))
        return []

    def gap(self, role: Role, ts_ns: int, lost_bytes: int) -> list[HttpEvent]:
        return []

    def close(self, ts_ns: int) -> list[HttpEvent]:
        return [ConnClosed(conn=K1, ts_ns=ts_ns)]


@pytest.fixture
def fake_h2() -> type[_FakeH2]:
    _FakeH2.made = []
    return _FakeH2


def _h2_feeder() -> Feeder:
    return Feeder(ConnectionTracker(http2_parser=_FakeH2))


SETTINGS_FRAME = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"


def test_preface_routes_to_http2(fake_h2: type[_FakeH2]) -> None:
    f = _h2_feeder()
    f.send(K1, OUT, 1, H2_PREFACE[:10])
    assert fake_h2.made == []
    f.send(K1, OUT, 1, H2_PREFACE[10:] + SETTINGS_FRAME)
    f.send(K1, IN, 2, SETTINGS_FRAME)
    (made,) = fake_h2.made
    assert made["mid_stream"] is False
    assert made["log"] == [
        (Role.REQUEST, H2_PREFACE[:10]),
        (Role.REQUEST, H2_PREFACE[10:] + SETTINGS_FRAME),
        (Role.RESPONSE, SETTINGS_FRAME),
    ]
    assert not f.t.is_server_side(K1)


def test_preface_on_ingress_is_a_server(fake_h2: type[_FakeH2]) -> None:
    f = _h2_feeder()
    f.send(K1, IN, 1, H2_PREFACE)
    f.send(K1, OUT, 2, SETTINGS_FRAME)
    assert f.t.is_server_side(K1)
    assert fake_h2.made[0]["log"] == [(Role.REQUEST, H2_PREFACE), (Role.RESPONSE, SETTINGS_FRAME)]


@pytest.mark.parametrize(
    "frame",
    [
        SETTINGS_FRAME,
        b"\x00\x00\x05\x00\x01\x00\x00\x00\x03hello",
        b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x01\x00\x00",
    ],
    ids=["settings", "data", "window_update"],
)
def test_plausible_frame_header_routes_to_http2_mid_stream(
    fake_h2: type[_FakeH2], frame: bytes
) -> None:
    f = _h2_feeder()
    f.send(K1, IN, 1, frame)
    assert [m["mid_stream"] for m in fake_h2.made] == [True]


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00\x00\x06\x04\x00\x00\x00\x00\x01" + b"\x00" * 6,  # SETTINGS on a stream
        b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + b"\x00" * 7,  # PING of the wrong size
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        bytes(range(64)),
    ],
)
def test_binary_that_is_not_http2_is_not_http(fake_h2: type[_FakeH2], blob: bytes) -> None:
    f = _h2_feeder()
    events = f.send(K1, OUT, 1, blob)
    assert events == [
        Desync(conn=K1, stream=None, ts_ns=1, reason="not_http", lost_bytes=len(blob))
    ]
    assert fake_h2.made == []
    assert f.send(K1, OUT, 2, GET) == []
    assert f.t.stats["ignored_bytes"] == len(GET)
    assert f.t.stats["desync.not_http"] == 1


def test_text_without_a_head_is_not_http_after_the_probe_limit() -> None:
    f = Feeder()
    line = b"+OK POP3 server ready and chatty\r\n"
    events: list[HttpEvent] = []
    sent = 0
    while sent <= PROBE_LIMIT_BYTES:
        events += f.send(K1, IN, 1, line * 64)
        sent += len(line) * 64
    assert events == [Desync(conn=K1, stream=None, ts_ns=1, reason="not_http", lost_bytes=sent)]
    assert f.send(K1, IN, 2, OK) == []
    assert f.t.stats["ignored_bytes"] == len(OK)


def test_text_mid_body_then_a_head_resyncs() -> None:
    f = Feeder()
    sse_tail = b'data: {"choices":[]}\n\ndata: [DONE]\n\n'
    assert f.send(K1, IN, 1, sse_tail) == []
    f.send(K1, OUT, 2, GET)
    events = f.send(K1, IN, 3, OK)
    assert events[0] == Desync(
        conn=K1, stream=None, ts_ns=3, reason="resync", lost_bytes=len(sse_tail)
    )
    assert kinds(events[1:]) == ["ResponseHead", "BodyData", "MessageEnd"]
    assert events[1].stream == 1


def test_ignore_drops_state_and_counts_later_bytes() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
    f.t.ignore(K1)
    assert f.send(K1, OUT, 2, b"defgh", lost=5) == []
    # The close still reaches later stages, which must forget their verdict too.
    assert f.send(K1, IN, 3, OK, closed=True) == [ConnClosed(conn=K1, ts_ns=3)]
    assert f.t.stats["ignored_bytes"] == 5 + 5 + len(OK)
    # After its close the key may be reused by a new connection.
    assert kinds(Feeder(f.t).send(K1, OUT, 4, GET)) == ["RequestHead", "MessageEnd"]


def test_least_recently_used_connection_is_evicted() -> None:
    f = Feeder(ConnectionTracker(max_connections=2))
    f.send(K1, OUT, 1, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
    f.send(K2, OUT, 2, GET)
    f.send(K1, IN, 3, b"HTTP/1.1 200 OK\r\n\r\nuntil close")  # K1 is now the most recent
    events = f.send(K3, OUT, 4, GET)
    assert events == [
        ConnClosed(conn=K2, ts_ns=4),  # K2 had nothing open
        RequestHead(
            conn=K3,
            stream=1,
            ts_ns=4,
            method="GET",
            target="/v1/models",
            authority="api.openai.com",
            headers=(("host", "api.openai.com"),),
            http_version="1.1",
        ),
        MessageEnd(conn=K3, stream=1, role=Role.REQUEST, ts_ns=4, complete=True),
    ]
    assert f.t.stats["evictions"] == 1
    more = f.send(K2, OUT, 5, GET)  # K1 is oldest now
    assert more[:4] == [
        MessageEnd(conn=K1, stream=1, role=Role.REQUEST, ts_ns=5, complete=False, reason="evicted"),
        MessageEnd(
            conn=K1, stream=1, role=Role.RESPONSE, ts_ns=5, complete=False, reason="evicted"
        ),
        ConnClosed(conn=K1, ts_ns=5),
        more[3],
    ]
    assert f.t.stats["evictions"] == 2


def test_close_ends_every_connection() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, GET)
    f.send(K1, IN, 5, b"HTTP/1.1 200 OK\r\n\r\nabc")
    f.send(K2, OUT, 7, b"GE")
    events = f.t.close()
    assert events == [
        MessageEnd(conn=K1, stream=1, role=Role.RESPONSE, ts_ns=7, complete=True),
        ConnClosed(conn=K1, ts_ns=7),
        Desync(conn=K2, stream=None, ts_ns=7, reason="too_short", lost_bytes=2),
    ]
    assert f.t.close() == []


def test_gap_before_the_protocol_is_known_drops_held_bytes() -> None:
    f = Feeder()
    f.send(K1, OUT, 1, b"POS")
    events = f.send(K1, OUT, 2, GET, skip=50)
    assert kinds(events) == ["RequestHead", "MessageEnd"]
    assert f.t.stats["lost_bytes"] == 50 + 3


# ------------------------------------------------------- recorded traffic, any split


def _script() -> list[tuple[Direction, int, bytes]]:
    reqs = request_samples()
    script: list[tuple[Direction, int, bytes]] = []
    names = [
        "openai_chat_stream_usage.txt",
        "anthropic_messages_stream_gzip_tooluse.txt",
        "gemini_generate_content_cached.txt",
        "openai_error_429.txt",
    ]
    for i, name in enumerate(names):
        script.append((OUT, 100 * i, reqs[i]))
        writes, _text, _status, _units = wire_response(name)
        script += [(IN, 100 * i + 1 + j, w) for j, w in enumerate(writes)]
    return script


def _replay(script: list[tuple[Direction, int, bytes]], mode: str | int) -> list[HttpEvent]:
    f = Feeder()
    rng = random.Random(mode)
    out: list[HttpEvent] = []
    for d, ts, data in script:
        if mode == "whole":
            parts = [data]
        elif mode == "bytes":
            parts = [data[i : i + 1] for i in range(len(data))]
        else:
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 5)))
            parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for p in parts:
            out += f.send(K1, d, ts, p)
    out += f.t.close()
    return merge(out)


def test_recorded_traffic_gives_the_same_events_however_split() -> None:
    whole = _replay(_script(), "whole")
    heads = [(e.stream, e.status) for e in whole if isinstance(e, ResponseHead)]
    assert heads == [(1, 200), (2, 200), (3, 200), (4, 429)]
    assert sum(isinstance(e, MessageEnd) and e.complete for e in whole) == 8
    assert not any(isinstance(e, Desync) for e in whole)
    for mode in ("bytes", 1, 2, 3):
        assert _replay(_script(), mode) == whole, mode


# -------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(
            st.sampled_from([K1, K2, K3]),
            st.sampled_from([OUT, IN]),
            st.integers(0, 300),
            st.one_of(
                st.binary(max_size=120),
                st.sampled_from([GET, OK, H2_PREFACE, SETTINGS_FRAME, b"\r\n\r\n"]),
            ),
            st.integers(0, 50),
            st.booleans(),
        ),
        max_size=40,
    ),
    ignore_at=st.integers(0, 40),
)
def test_arbitrary_chunks_never_raise_and_memory_stays_bounded(
    chunks: list[tuple[ConnKey, Direction, int, bytes, int, bool]], ignore_at: int
) -> None:
    t = ConnectionTracker(max_connections=2)
    for i, (conn, d, off, data, lost, closed) in enumerate(chunks):
        if i == ignore_at:
            t.ignore(conn)
        events = t.feed(
            Chunk(
                conn=conn,
                direction=d,
                offset=off,
                ts_ns=i,
                data=data,
                lost_bytes=lost,
                closed=closed and i % 3 == 0,
            )
        )
        assert all(e.conn in (K1, K2, K3) for e in events)
        assert t.buffered_bytes <= 2 * 2 * MAX_HEAD_BYTES
    t.close()
    assert t.buffered_bytes == 0
