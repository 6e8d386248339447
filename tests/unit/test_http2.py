"""Http2Parser: real h2 conversations, hand-built frames, losses, chunking, fuzzing."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

import hpack
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumen_sniff.model import (
    BodyData,
    ConnClosed,
    ConnKey,
    Desync,
    HttpEvent,
    MessageEnd,
    ProcessInfo,
    RequestHead,
    ResponseHead,
    Role,
)
from lumen_sniff.protocol.http2.frames import PREFACE, find_boundary
from lumen_sniff.protocol.http2.parser import BLOCK_CAP_BYTES, Http2Parser
from lumen_sniff.protocol.http2.streams import MAX_STREAMS

CONN = ConnKey(source="test", pid=4242, handle=0x7F00_1000)
PROC = ProcessInfo(pid=4242, comm="python3")
PEER = ("203.0.113.9", 443)
REQ, RESP = Role.REQUEST, Role.RESPONSE
AUTHORITY = "API.OpenAI.com"

Segments = list[tuple[Role, bytes]]

# ------------------------------------------------------------------ helpers


def feed(segments: Segments, split: Callable[[bytes], Iterable[bytes]] = lambda d: [d], *,
         mid_stream: bool = False, close: bool = True) -> list[HttpEvent]:
    """Feed each segment (ts = its index) cut by ``split``; then close."""
    parser = Http2Parser(CONN, PROC, PEER, mid_stream=mid_stream)
    events: list[HttpEvent] = []
    for ts, (role, data) in enumerate(segments):
        for piece in split(data):
            events += parser.data(role, ts, piece)
    if close:
        events += parser.close(len(segments))
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def random_split(seed: int) -> Callable[[bytes], list[bytes]]:
    rng = random.Random(seed)

    def split(data: bytes) -> list[bytes]:
        if len(data) < 2:
            return [data]
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
        return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]

    return split


def merged(events: list[HttpEvent]) -> list[HttpEvent]:
    """Merge consecutive BodyData of one message (chunking may split them)."""
    out: list[HttpEvent] = []
    for ev in events:
        last = out[-1] if out else None
        if (isinstance(ev, BodyData) and isinstance(last, BodyData)
                and (last.stream, last.role) == (ev.stream, ev.role)):
            out[-1] = BodyData(conn=last.conn, stream=last.stream, role=last.role,
                               ts_ns=last.ts_ns, data=last.data + ev.data)
        else:
            out.append(ev)
    return out


def shape(events: list[HttpEvent]) -> list[tuple[Any, ...]]:
    """Everything but bodies and times, in order."""
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if isinstance(ev, RequestHead):
            out.append(("req", ev.stream, ev.method, ev.target, ev.authority, ev.headers))
        elif isinstance(ev, ResponseHead):
            out.append(("resp", ev.stream, ev.status, ev.headers))
        elif isinstance(ev, MessageEnd):
            out.append(("end", ev.stream, ev.role, ev.complete, ev.reason))
        elif isinstance(ev, Desync):
            out.append(("desync", ev.stream, ev.reason, ev.lost_bytes))
        elif isinstance(ev, ConnClosed):
            out.append(("closed",))
    return out


def bodies(events: list[HttpEvent]) -> dict[tuple[int, Role], bytes]:
    out: dict[tuple[int, Role], bytes] = {}
    for ev in events:
        if isinstance(ev, BodyData):
            out[ev.stream, ev.role] = out.get((ev.stream, ev.role), b"") + ev.data
    return out


def raw_frame(ftype: int, sid: int, body: bytes, flags: int = 0) -> bytes:
    """A frame hyperframe would not build (unknown types)."""
    return len(body).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + body


def frame(f: Frame, **flags: bool) -> bytes:
    for name, on in flags.items():
        if on:
            f.flags.add(name.upper())
    return f.serialize()


# -------------------------------------------------------------- h2 in memory


class Wire:
    """An h2 client and server talking in memory; records who sent which bytes."""

    def __init__(self) -> None:
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.server = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.segments: Segments = []

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for conn, peer, role in ((self.client, self.server, REQ),
                                     (self.server, self.client, RESP)):
                out = conn.data_to_send()
                if out:
                    moved = True
                    self.segments.append((role, out))
                    for event in peer.receive_data(out):
                        if isinstance(event, DataReceived):
                            peer.acknowledge_received_data(event.flow_controlled_length,
                                                           event.stream_id)

    def raw(self, role: Role, data: bytes) -> None:
        self.segments.append((role, data))


def request_headers(path: str, *extra: tuple[str, str],
                    method: str = "POST") -> list[tuple[str, str]]:
    return [(":method", method), (":path", path), (":scheme", "https"),
            (":authority", AUTHORITY), *extra]


UA = ("user-agent", "OpenAI/Python 1.82.0")
JSON_CT = ("content-type", "application/json")
AUTH = ("authorization", "Bearer sk-test-not-a-real-key-0000")
CHAT_BODY = json.dumps({"model": "gpt-4o-mini", "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}).encode()
SSE = [b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
       b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
       b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\n',
       b"data: [DONE]\n\n"]
MSG_JSON = json.dumps({"type": "message", "usage": {"input_tokens": 12, "output_tokens": 34}},
                      indent=2).encode() * 20
BIG = "x" * 40_000


def conversation() -> Segments:
    """Five streams: interleaved SSE and gzip, CONTINUATION, 1xx + trailers, reset, GOAWAY."""
    w = Wire()
    w.client.initiate_connection()
    # The server's encoder grows its table to 65536: only legal because announced.
    w.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 65_536,
                              SettingCodes.MAX_FRAME_SIZE: 32_768,
                              SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    w.server.initiate_connection()
    w.server.update_settings({SettingCodes.HEADER_TABLE_SIZE: 256})
    w.pump()
    w.client.send_headers(1, request_headers("/v1/chat/completions", JSON_CT, AUTH, UA))
    w.client.send_data(1, CHAT_BODY, end_stream=True)
    w.client.send_headers(3, request_headers("/v1/messages?beta=true", JSON_CT, AUTH, UA))
    w.client.send_data(3, b'{"model":')
    w.client.send_data(3, b'"claude"}', end_stream=True)
    w.client.ping(b"12345678")
    w.client.increment_flow_control_window(1 << 16)
    w.client.prioritize(3, weight=200)
    w.pump()
    packed = gzip.compress(MSG_JSON)
    w.server.send_headers(1, [(":status", "200"), ("content-type", "text/event-stream")])
    w.server.send_data(1, SSE[0])
    w.server.send_headers(3, [(":status", "200"), JSON_CT, ("content-encoding", "gzip")])
    w.server.send_data(1, SSE[1])
    w.server.send_data(3, packed[:200], pad_length=16)
    w.pump()
    w.raw(RESP, raw_frame(0xFA, 0, b"unknown extension"))
    w.server.send_data(1, SSE[2])
    w.server.send_data(3, packed[200:], end_stream=True, pad_length=3)
    w.server.send_data(1, SSE[3], end_stream=True)
    w.pump()
    # 40 kB of headers: HEADERS + CONTINUATION, and an entry bigger than the table.
    w.client.send_headers(5, request_headers("/v1/models", ("x-big", BIG), UA, method="GET"),
                          end_stream=True)
    w.pump()
    w.server.send_headers(5, [(":status", "103"), ("link", "</s.css>; rel=preload")])
    w.server.send_headers(5, [(":status", "200"), ("content-type", "text/plain")])
    w.server.send_data(5, b"models")
    w.server.send_headers(5, [("x-trailer", "done")], end_stream=True)
    w.pump()
    w.client.send_headers(7, request_headers("/v1/embeddings", JSON_CT, UA))
    w.client.send_data(7, b"partial")
    w.pump()
    w.server.send_headers(7, [(":status", "200"), JSON_CT])
    w.server.send_data(7, b"chunk")
    w.pump()
    w.client.reset_stream(7, ErrorCodes.CANCEL)
    w.client.send_headers(9, request_headers("/v1/chat/completions", JSON_CT, UA))
    w.client.send_data(9, b"{")
    w.pump()
    w.server.close_connection(last_stream_id=7)
    w.pump()
    return w.segments


SEGMENTS = conversation()

EXPECTED_SHAPE: list[tuple[Any, ...]] = [
    ("req", 1, "POST", "/v1/chat/completions", "api.openai.com", (JSON_CT, AUTH, UA)),
    ("end", 1, REQ, True, ""),
    ("req", 3, "POST", "/v1/messages?beta=true", "api.openai.com", (JSON_CT, AUTH, UA)),
    ("end", 3, REQ, True, ""),
    ("resp", 1, 200, (("content-type", "text/event-stream"),)),
    ("resp", 3, 200, (JSON_CT, ("content-encoding", "gzip"))),
    ("end", 3, RESP, True, ""),
    ("end", 1, RESP, True, ""),
    ("req", 5, "GET", "/v1/models", "api.openai.com", (("x-big", BIG), UA)),
    ("end", 5, REQ, True, ""),
    ("resp", 5, 200, (("content-type", "text/plain"),)),
    ("end", 5, RESP, True, ""),
    ("req", 7, "POST", "/v1/embeddings", "api.openai.com", (JSON_CT, UA)),
    ("resp", 7, 200, (JSON_CT,)),
    ("end", 7, REQ, False, "reset"),
    ("end", 7, RESP, False, "reset"),
    ("req", 9, "POST", "/v1/chat/completions", "api.openai.com", (JSON_CT, UA)),
    ("end", 9, REQ, False, "goaway"),
    ("closed",),
]
EXPECTED_BODIES = {
    (1, REQ): CHAT_BODY,
    (3, REQ): b'{"model":"claude"}',
    (1, RESP): b"".join(SSE),
    (3, RESP): MSG_JSON,
    (5, RESP): b"models",
    (7, REQ): b"partial",
    (7, RESP): b"chunk",
    (9, REQ): b"{",
}


# ------------------------------------------------------------ the conversation


def test_conversation_fixture_exercises_what_it_claims() -> None:
    """Guard the fixture itself: the frames the other tests rely on are on the wire."""
    types: set[int] = set()
    for role in (REQ, RESP):
        stream = b"".join(d for r, d in SEGMENTS if r is role)
        pos = len(PREFACE) if role is REQ else 0
        while pos < len(stream):
            length = int.from_bytes(stream[pos:pos + 3], "big")
            types.add(stream[pos + 3])
            pos += 9 + length
        assert pos == len(stream)
    # DATA HEADERS PRIORITY RST SETTINGS PING GOAWAY WINDOW_UPDATE CONTINUATION, unknown 0xFA
    assert types == {0, 1, 2, 3, 4, 6, 7, 8, 9, 0xFA}


def test_conversation_whole() -> None:
    events = feed(SEGMENTS)
    assert shape(events) == EXPECTED_SHAPE
    assert bodies(events) == EXPECTED_BODIES
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert {(h.process, h.peer, h.http_version, h.conn) for h in heads} == {(PROC, PEER, "2", CONN)}


def test_conversation_byte_by_byte_is_identical() -> None:
    assert merged(feed(SEGMENTS, bytewise)) == merged(feed(SEGMENTS))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_conversation_random_splits_are_identical(seed: int) -> None:
    assert merged(feed(SEGMENTS, random_split(seed))) == merged(feed(SEGMENTS))


def test_all_segments_in_one_call_per_direction_give_the_same_messages() -> None:
    """Both directions delivered as two big chunks: per-message results do not change."""
    joined: Segments = [(REQ, b"".join(d for r, d in SEGMENTS if r is REQ)),
                        (RESP, b"".join(d for r, d in SEGMENTS if r is RESP))]
    events = feed(joined)
    assert bodies(events) == EXPECTED_BODIES
    ends = {(e.stream, e.role): (e.complete, e.reason) for e in events if isinstance(e, MessageEnd)}
    assert ends == {(1, REQ): (True, ""), (3, REQ): (True, ""), (5, REQ): (True, ""),
                    # All requests come first: the client's RST ends stream 7 before
                    # the server's answer, which is then a new response cut by close,
                    # and the server's GOAWAY now finds stream 9 still open.
                    (7, REQ): (False, "reset"), (9, REQ): (False, "goaway"),
                    (1, RESP): (True, ""), (3, RESP): (True, ""), (5, RESP): (True, ""),
                    (7, RESP): (False, "closed")}
    assert not [e for e in events if isinstance(e, Desync)]


def test_body_events_carry_capture_time_and_heads_their_first_byte_time() -> None:
    h = hpack.Encoder()
    block = h.encode(request_headers("/v1/x"))
    headers = frame(HeadersFrame(1, data=block), end_headers=True)
    data = frame(DataFrame(1, data=b"abcdef"), end_stream=True)
    parser = Http2Parser(CONN, mid_stream=False)
    assert parser.data(REQ, 10, PREFACE + headers[:5]) == []
    first = parser.data(REQ, 20, headers[5:] + data[:12])
    second = parser.data(REQ, 30, data[12:])
    assert [(type(e).__name__, e.ts_ns) for e in first] == [("RequestHead", 10), ("BodyData", 20)]
    assert [(type(e).__name__, e.ts_ns) for e in second] == [("BodyData", 30), ("MessageEnd", 30)]
    assert [e.data for e in (first[1], second[0]) if isinstance(e, BodyData)] == [b"abc", b"def"]


# ------------------------------------------------------------------- frames


def _client(*frames: bytes) -> Segments:
    return [(REQ, PREFACE + b"".join(frames))]


def test_padded_headers_with_priority_and_padded_data() -> None:
    enc = hpack.Encoder()
    hf = HeadersFrame(1, data=enc.encode(request_headers("/p")), pad_length=7, depends_on=0,
                      stream_weight=15)
    for flag in ("PADDED", "PRIORITY", "END_HEADERS"):
        hf.flags.add(flag)
    df = DataFrame(1, data=b"payload", pad_length=200)
    for flag in ("PADDED", "END_STREAM"):
        df.flags.add(flag)
    events = feed(_client(hf.serialize(), df.serialize()))
    assert shape(events) == [("req", 1, "POST", "/p", "api.openai.com", ()),
                             ("end", 1, REQ, True, ""), ("closed",)]
    assert bodies(events) == {(1, REQ): b"payload"}


def test_authority_falls_back_to_host_header_and_is_lower_cased() -> None:
    enc = hpack.Encoder()
    block = enc.encode([(":method", "get"), (":path", "/x"), (":scheme", "https"),
                        ("host", "Local.LLM:11434"), ("accept", "*/*")])
    events = feed(_client(frame(HeadersFrame(1, data=block), end_headers=True, end_stream=True)))
    assert shape(events)[0] == ("req", 1, "GET", "/x", "local.llm:11434",
                                (("host", "Local.LLM:11434"), ("accept", "*/*")))


def test_zero_length_frames_at_the_end_of_a_chunk_complete_at_once() -> None:
    enc = hpack.Encoder()
    parser = Http2Parser(CONN)
    head = frame(HeadersFrame(1, data=enc.encode(request_headers("/z"))), end_headers=True)
    out = parser.data(REQ, 1, PREFACE + head + frame(DataFrame(1, data=b""), end_stream=True))
    assert shape(out) == [("req", 1, "POST", "/z", "api.openai.com", ()),
                          ("end", 1, REQ, True, "")]


def test_unknown_and_control_frames_are_skipped_without_events() -> None:
    enc = hpack.Encoder()
    noise = [raw_frame(0x42, 1, b"\x00" * 300, flags=0xFF),
             frame(WindowUpdateFrame(0, window_increment=1000)),
             frame(PriorityFrame(1, depends_on=0, stream_weight=3)),
             frame(PingFrame(0, opaque_data=b"abcdefgh")),
             frame(SettingsFrame(0), ack=True)]
    head = frame(HeadersFrame(1, data=enc.encode(request_headers("/n"))), end_headers=True)
    events = feed(_client(*noise, head, *noise, frame(DataFrame(1, data=b"q"), end_stream=True)))
    assert shape(events) == [("req", 1, "POST", "/n", "api.openai.com", ()),
                             ("end", 1, REQ, True, ""), ("closed",)]


def test_server_rst_goaway_and_close_cut_open_messages() -> None:
    enc, senc = hpack.Encoder(), hpack.Encoder()
    client = b"".join(frame(HeadersFrame(s, data=enc.encode(request_headers(f"/{s}"))),
                            end_headers=True) for s in (1, 3, 5))
    server = (frame(HeadersFrame(1, data=senc.encode([(":status", "200")])), end_headers=True)
              + frame(DataFrame(1, data=b"part")) + frame(RstStreamFrame(1, error_code=2))
              + frame(HeadersFrame(3, data=senc.encode([(":status", "500")])), end_headers=True)
              + frame(GoAwayFrame(0, last_stream_id=3, error_code=0)))
    events = feed([(REQ, PREFACE + client), (RESP, server)])
    assert shape(events) == [
        ("req", 1, "POST", "/1", "api.openai.com", ()),
        ("req", 3, "POST", "/3", "api.openai.com", ()),
        ("req", 5, "POST", "/5", "api.openai.com", ()),
        ("resp", 1, 200, ()),
        ("end", 1, REQ, False, "reset"),
        ("end", 1, RESP, False, "reset"),
        ("resp", 3, 500, ()),
        ("end", 5, REQ, False, "goaway"),
        ("end", 3, REQ, False, "closed"),
        ("end", 3, RESP, False, "closed"),
        ("closed",),
    ]


def test_trailers_end_the_message_and_interim_heads_are_not_responses() -> None:
    enc, senc = hpack.Encoder(), hpack.Encoder()
    client = frame(HeadersFrame(1, data=enc.encode(request_headers("/t"))), end_headers=True,
                   end_stream=True)
    server = (frame(HeadersFrame(1, data=senc.encode([(":status", "100")])), end_headers=True)
              + frame(HeadersFrame(1, data=senc.encode([(":status", "200"), ("a", "b")])),
                      end_headers=True)
              + frame(DataFrame(1, data=b"body"))
              + frame(HeadersFrame(1, data=senc.encode([("grpc-status", "0")])),
                      end_headers=True, end_stream=True))
    events = feed([(REQ, PREFACE + client), (RESP, server)])
    assert shape(events) == [("req", 1, "POST", "/t", "api.openai.com", ()),
                             ("end", 1, REQ, True, ""), ("resp", 1, 200, (("a", "b"),)),
                             ("end", 1, RESP, True, ""), ("closed",)]
    assert bodies(events) == {(1, RESP): b"body"}


def test_malformed_heads_are_desyncs_and_their_data_is_counted() -> None:
    enc, senc = hpack.Encoder(), hpack.Encoder()
    client = frame(HeadersFrame(1, data=enc.encode([(":path", "/no-method")])), end_headers=True)
    client += frame(DataFrame(1, data=b"12345"), end_stream=True)
    server = frame(HeadersFrame(1, data=senc.encode([(":status", "abc")])), end_headers=True)
    server += frame(DataFrame(1, data=b"xyz"), end_stream=True)
    events = feed([(REQ, PREFACE + client), (RESP, server)])
    assert shape(events) == [("desync", 1, "malformed", 0), ("desync", 1, "malformed", 0),
                             ("desync", 1, "malformed", 5), ("desync", 1, "malformed", 3),
                             ("closed",)]


def test_data_for_a_stream_never_opened_is_counted_not_emitted() -> None:
    events = feed(_client(frame(DataFrame(3, data=b"a" * 50)),
                          frame(DataFrame(3, data=b"b" * 20), end_stream=True)))
    assert shape(events) == [("desync", 3, "no_head", 70), ("closed",)]


def test_bad_preface_is_reported_then_frames_are_found() -> None:
    enc = hpack.Encoder()
    head = frame(HeadersFrame(1, data=enc.encode(request_headers("/after"))), end_headers=True)
    settings_frame = frame(SettingsFrame(0, settings={1: 4096}))
    events = feed([(REQ, b"PRI * HTTP/1.1 garbage!" + settings_frame + head
                    + frame(DataFrame(1, data=b"!"), end_stream=True))])
    assert shape(events) == [("desync", None, "preface", 0), ("desync", None, "resync", 23),
                             ("req", 1, "POST", "/after", "api.openai.com", ()),
                             ("end", 1, REQ, True, ""), ("closed",)]


# ------------------------------------------------------------- header blocks


def test_header_block_interrupted_by_another_frame_is_lost_and_table_forgotten() -> None:
    enc = hpack.Encoder()
    block1 = enc.encode(request_headers("/a", ("x-k", "v")))
    block3 = enc.encode(request_headers("/b", ("x-k", "v")))  # refers to block1's entries
    client = (frame(HeadersFrame(1, data=block1[:10]))
              + frame(PingFrame(0, opaque_data=b"12345678"))
              + frame(ContinuationFrame(1, data=block1[10:]), end_headers=True)
              + frame(DataFrame(1, data=b"lost"), end_stream=True)
              + frame(HeadersFrame(3, data=block3), end_headers=True, end_stream=True))
    events = feed(_client(client))
    assert shape(events) == [("desync", 1, "hpack", 10), ("desync", 1, "hpack", len(block1) - 10),
                             ("desync", 3, "hpack", len(block3)), ("desync", 1, "hpack", 4),
                             ("closed",)]


def test_continuation_backlog_is_capped() -> None:
    enc = hpack.Encoder()
    huge = enc.encode(request_headers("/huge", ("x-pad", "p" * (BLOCK_CAP_BYTES + 10))),
                      huffman=False)
    frames = [frame(HeadersFrame(1, data=huge[:16_000]))]
    rest = huge[16_000:]
    while rest:
        piece, rest = rest[:16_000], rest[16_000:]
        frames.append(frame(ContinuationFrame(1, data=piece), end_headers=not rest))
    frames.append(frame(DataFrame(1, data=b"dropped"), end_stream=True))
    fresh = hpack.Encoder()  # only static references: decodes after the table is forgotten
    frames.append(frame(HeadersFrame(3, data=fresh.encode(request_headers("/ok"))),
                        end_headers=True, end_stream=True))
    parser = Http2Parser(CONN)
    events = parser.data(REQ, 0, PREFACE)
    peak = 0
    for f in frames:
        events += parser.data(REQ, 0, f)
        peak = max(peak, parser.buffered_bytes)
    events += parser.close(1)
    assert peak <= BLOCK_CAP_BYTES
    assert shape(events) == [("desync", 1, "too_large", len(huge)),
                             ("req", 3, "POST", "/ok", "api.openai.com", ()),
                             ("end", 3, REQ, True, ""),
                             ("desync", 1, "too_large", 7), ("closed",)]


def test_table_size_update_beyond_default_needs_the_receivers_settings() -> None:
    enc = hpack.Encoder()
    enc.header_table_size = 65_536
    block = enc.encode([(":status", "200"), ("x-a", "1")])
    server = frame(HeadersFrame(1, data=block), end_headers=True, end_stream=True)
    client_req = frame(HeadersFrame(1, data=hpack.Encoder().encode(request_headers("/s"))),
                       end_headers=True, end_stream=True)
    announce = frame(SettingsFrame(0, settings={SettingsFrame.HEADER_TABLE_SIZE: 65_536}))
    with_settings = feed([(REQ, PREFACE + announce + client_req), (RESP, server)])
    without = feed([(REQ, PREFACE + client_req), (RESP, server)])
    assert ("resp", 1, 200, (("x-a", "1"),)) in shape(with_settings)
    assert ("desync", 1, "hpack", len(block)) in shape(without)


# ---------------------------------------------------------------------- loss


def _two_requests() -> tuple[bytes, list[int]]:
    """Client bytes: stream 1 with a 3000-byte body in one DATA frame, then stream 3."""
    enc = hpack.Encoder()
    parts = [PREFACE,
             frame(HeadersFrame(1, data=enc.encode(request_headers("/one", UA))), end_headers=True),
             frame(DataFrame(1, data=b"A" * 3000), end_stream=True),
             frame(HeadersFrame(3, data=enc.encode(request_headers("/two", UA))), end_headers=True,
                   end_stream=True)]
    offsets = [sum(len(p) for p in parts[:i]) for i in range(len(parts) + 1)]
    return b"".join(parts), offsets


def test_gap_inside_data_keeps_framing() -> None:
    wire, off = _two_requests()
    cut = off[2] + 9 + 1000
    parser = Http2Parser(CONN)
    events = parser.data(REQ, 1, wire[:cut])
    events += parser.gap(REQ, 2, 500)
    events += parser.data(REQ, 3, wire[cut + 500:])
    events += parser.close(4)
    assert shape(events) == [("req", 1, "POST", "/one", "api.openai.com", (UA,)),
                             ("desync", 1, "gap", 500), ("end", 1, REQ, False, "desync"),
                             ("req", 3, "POST", "/two", "api.openai.com", (UA,)),
                             ("end", 3, REQ, True, ""), ("desync", 1, "desync", 1500),
                             ("closed",)]
    assert bodies(events) == {(1, REQ): b"A" * 1000}


def test_gap_across_frames_resyncs_and_reports_the_skip() -> None:
    wire, off = _two_requests()
    cut = off[2] + 9 + 1000
    resume = off[2] + 9 + 2000  # inside the DATA payload: 1000 'A's to skip, then stream 3
    parser = Http2Parser(CONN)
    events = parser.data(REQ, 1, wire[:cut])
    events += parser.gap(REQ, 2, 5000)  # more than the frame held: place lost
    events += parser.data(REQ, 3, wire[resume:])
    events += parser.close(4)
    assert shape(events) == [("req", 1, "POST", "/one", "api.openai.com", (UA,)),
                             ("desync", None, "gap", 5000), ("end", 1, REQ, False, "desync"),
                             ("desync", None, "resync", 1000),
                             # stream 3's block refers to stream 1's entries: forgotten.
                             ("desync", 3, "hpack", off[4] - off[3] - 9),
                             ("closed",)]


def test_gap_in_the_response_leaves_requests_alone() -> None:
    enc, senc = hpack.Encoder(), hpack.Encoder()
    client = frame(HeadersFrame(1, data=enc.encode(request_headers("/r"))), end_headers=True,
                   end_stream=True)
    parser = Http2Parser(CONN)
    out = parser.data(REQ, 0, PREFACE + client)
    out += parser.data(RESP, 1, frame(HeadersFrame(1, data=senc.encode([(":status", "200")])),
                                      end_headers=True)[:5])
    out += parser.gap(RESP, 2, 10)
    out += parser.close(3)
    assert shape(out) == [("req", 1, "POST", "/r", "api.openai.com", ()),
                          ("end", 1, REQ, True, ""), ("desync", None, "gap", 10),
                          ("desync", None, "resync", 5), ("closed",)]


def test_mid_stream_start_finds_frames_and_reports_what_it_cannot_decode() -> None:
    w = Wire()
    w.client.initiate_connection()
    w.server.initiate_connection()
    w.pump()
    w.client.send_headers(1, request_headers("/v1/chat/completions", JSON_CT, UA))
    w.client.send_data(1, CHAT_BODY, end_stream=True)
    w.pump()
    w.server.send_headers(1, [(":status", "200"), ("content-type", "text/event-stream")])
    for chunk in SSE:
        w.server.send_data(1, chunk)
    w.server.end_stream(1)
    w.pump()
    start = len(w.segments)
    # Stream 3 repeats stream 1's headers (dynamic references) ...
    w.client.send_headers(3, request_headers("/v1/chat/completions", JSON_CT, UA),
                          end_stream=True)
    w.pump()
    # ... stream 5 uses only new names and values: decodable without history.
    w.client.send_headers(5, [(":method", "GET"), (":path", "/v1/files"), (":scheme", "http"),
                              (":authority", "other.example"), ("x-new", "1")], end_stream=True)
    w.pump()
    w.server.send_headers(5, [(":status", "404"), ("x-fresh", "yes")])
    w.server.send_data(5, b"nope", end_stream=True)
    w.pump()
    # Capture begins 7 bytes into the server's third SSE DATA frame.
    resp_stream = b"".join(d for r, d in w.segments[:start] if r is RESP)
    third = resp_stream.index(SSE[2])
    tail: Segments = [(RESP, resp_stream[third + 7:])]
    tail += w.segments[start:]
    events = feed(tail, mid_stream=True)
    sse_frames_left = len(SSE[2]) - 7
    assert shape(events) == [
        ("desync", None, "resync", sse_frames_left),
        ("desync", 1, "no_head", len(SSE[3])),  # END_STREAM came in its own empty frame
        ("desync", 3, "hpack", shape_len(w.segments[start][1])),
        ("req", 5, "GET", "/v1/files", "other.example", (("x-new", "1"),)),
        ("end", 5, REQ, True, ""),
        ("resp", 5, 404, (("x-fresh", "yes"),)),
        ("end", 5, RESP, True, ""),
        ("closed",),
    ]
    assert bodies(events) == {(5, RESP): b"nope"}
    assert merged(feed(tail, bytewise, mid_stream=True)) == merged(events)


def shape_len(headers_frame_bytes: bytes) -> int:
    """The header block length of a segment holding one HEADERS frame (no padding)."""
    return int.from_bytes(headers_frame_bytes[:3], "big")


def test_mid_stream_accepts_a_real_preface() -> None:
    events = feed(SEGMENTS, mid_stream=True)
    # The request side starts with the preface, so it is in step at once; the
    # response side finds the server's first SETTINGS at offset 0.
    assert shape(events) == EXPECTED_SHAPE


# ------------------------------------------------------------------ bounds


def test_stream_table_is_bounded_and_evicts_the_oldest() -> None:
    enc = hpack.Encoder()
    parser = Http2Parser(CONN)
    events = parser.data(REQ, 0, PREFACE)
    for i in range(MAX_STREAMS + 50):
        block = enc.encode(request_headers("/s"))
        events += parser.data(REQ, 0, frame(HeadersFrame(2 * i + 1, data=block),
                                            end_headers=True))
    assert parser.tracked_streams == MAX_STREAMS
    evicted = [e.stream for e in events if isinstance(e, MessageEnd)]
    assert evicted == [2 * i + 1 for i in range(50)]
    assert {e.reason for e in events if isinstance(e, MessageEnd)} == {"evicted"}


def test_data_is_streamed_not_buffered() -> None:
    payload = bytes(range(256)) * 64  # 16 KiB
    enc = hpack.Encoder()
    head = PREFACE + frame(HeadersFrame(1, data=enc.encode(request_headers("/big"))),
                           end_headers=True)
    parser = Http2Parser(CONN)
    assert shape(parser.data(REQ, 0, head))[0][:2] == ("req", 1)
    got = b""
    peak = 0
    for piece in bytewise(frame(DataFrame(1, data=payload), end_stream=True)):
        for ev in parser.data(REQ, 0, piece):
            if isinstance(ev, BodyData):
                got += ev.data
        peak = max(peak, parser.buffered_bytes)
    assert got == payload
    assert peak == 8  # only the frame header is ever held back


def test_resync_buffer_is_bounded() -> None:
    parser = Http2Parser(CONN, mid_stream=True)
    rng = random.Random(3)
    peak = 0
    for _ in range(2000):
        parser.data(RESP, 0, bytes(rng.getrandbits(8) for _ in range(50)))
        peak = max(peak, parser.buffered_bytes)
    # A candidate header waits for the header after it: at most 9 + 16384 + 9 bytes
    # plus the chunk being scanned.
    assert peak <= 9 + 16_384 + 9 + 50


# ------------------------------------------------------------------ fuzzing


def _check_invariants(events: list[HttpEvent]) -> None:
    assert isinstance(events[-1], ConnClosed)
    assert sum(isinstance(e, ConnClosed) for e in events) == 1
    open_: set[tuple[int, Role]] = set()
    for ev in events:
        if isinstance(ev, RequestHead | ResponseHead):
            role = REQ if isinstance(ev, RequestHead) else RESP
            assert (ev.stream, role) not in open_
            open_.add((ev.stream, role))
        elif isinstance(ev, BodyData):
            assert (ev.stream, ev.role) in open_
        elif isinstance(ev, MessageEnd):
            open_.remove((ev.stream, ev.role))
        elif isinstance(ev, Desync):
            assert ev.lost_bytes >= 0
    assert not open_


_ops = st.lists(st.tuples(st.sampled_from(["req", "resp", "gap_req", "gap_resp"]),
                          st.binary(max_size=64)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, mid_stream=st.booleans(), with_preface=st.booleans())
def test_arbitrary_bytes_never_raise(ops: list[tuple[str, bytes]], mid_stream: bool,
                                     with_preface: bool) -> None:
    parser = Http2Parser(CONN, mid_stream=mid_stream)
    events = parser.data(REQ, 0, PREFACE) if with_preface else []
    for ts, (op, data) in enumerate(ops, 1):
        role = REQ if op.endswith("req") else RESP
        if op.startswith("gap"):
            events += parser.gap(role, ts, len(data))
        else:
            events += parser.data(role, ts, data)
    events += parser.close(len(ops) + 1)
    _check_invariants(events)
    assert parser.data(REQ, 99, b"more") == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=6),
       seed=st.integers(0, 1000))
def test_corrupted_conversation_never_raises(flips: list[tuple[int, int]], seed: int) -> None:
    segments = [(r, bytearray(d)) for r, d in SEGMENTS]
    for where, xor in flips:
        role, data = segments[where % len(segments)]
        data[(where // len(segments)) % len(data)] ^= xor
    events = feed([(r, bytes(d)) for r, d in segments], random_split(seed))
    _check_invariants(events)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drop=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 4000)), max_size=3))
def test_gaps_in_the_conversation_never_raise_and_never_invent_bodies(
        drop: list[tuple[int, int]]) -> None:
    parser = Http2Parser(CONN)
    cuts = {where % len(SEGMENTS): n for where, n in drop}
    events: list[HttpEvent] = []
    for ts, (role, data) in enumerate(SEGMENTS):
        if ts in cuts:
            n = min(cuts[ts], len(data))
            events += parser.data(role, ts, data[:len(data) - n])
            events += parser.gap(role, ts, n)
        else:
            events += parser.data(role, ts, data)
    events += parser.close(len(SEGMENTS))
    _check_invariants(events)
    for key, data in bodies(events).items():
        assert EXPECTED_BODIES[key].startswith(data)


# ------------------------------------------------------------ frame finder


def test_find_boundary_needs_a_second_header_and_skips_text() -> None:
    ping = frame(PingFrame(0, opaque_data=b"\x00" * 8))
    data = frame(DataFrame(1, data=b"x"))
    junk = bytearray(b"data: {\"x\": 1}\n\n" + ping + data)
    assert find_boundary(junk, 0, REQ, 16_384) == (16, True)
    only_one = bytearray(b"data: 1\n\n" + ping)
    assert find_boundary(only_one, 0, REQ, 16_384) == (9, False)
    # Even stream ids are the server's (push); a client never sends DATA on them.
    even = bytearray(frame(DataFrame(2, data=b"x")) + data)
    assert find_boundary(even, 0, REQ, 16_384) == (10, False)
    assert find_boundary(even, 0, REQ, 16_384, at_end=True) == (10, True)
    assert find_boundary(even, 0, RESP, 16_384, at_end=True) == (10, True)


@pytest.mark.parametrize("max_frame", [16_384, 1 << 20])
def test_find_boundary_respects_max_frame(max_frame: int) -> None:
    big = frame(DataFrame(1, data=b"z" * 20_000)) + frame(PingFrame(0, opaque_data=b"1" * 8))
    pos, found = find_boundary(bytearray(big), 0, RESP, max_frame)
    assert (pos == 0 and found) == (max_frame > 20_000)


# ------------------------------------------------ every state x every input


def _req_head() -> bytes:
    return frame(HeadersFrame(1, data=hpack.Encoder().encode(request_headers("/st"))),
                 end_headers=True)


REQ1 = ("req", 1, "POST", "/st", "api.openai.com", ())
_DATA10 = frame(DataFrame(1, data=b"abcdefghij"))
_PADDED10 = DataFrame(1, data=b"abcde", pad_length=4)
_PADDED10.flags.add("PADDED")
_SETTINGS12 = frame(SettingsFrame(0, settings={1: 4096, 5: 16_384}))
_PING = frame(PingFrame(0, opaque_data=b"12345678"))

# state -> (mid_stream, request-side bytes that leave the parser in it)
STATES: dict[str, tuple[bool, bytes]] = {
    "preface": (False, PREFACE[:10]),
    "head": (False, PREFACE + _req_head()),
    "head_partial": (False, PREFACE + _req_head() + _DATA10[:4]),
    "data_pad": (False, PREFACE + _req_head() + _PADDED10.serialize()[:9]),
    "data": (False, PREFACE + _req_head() + _DATA10[:12]),
    "body": (False, PREFACE + _req_head() + _SETTINGS12[:15]),
    "skip": (False, PREFACE + _req_head() + _PING[:11]),
    "sync": (True, b"xyz"),
}
BIG_GAP = 10**6
END_DESYNC = ("end", 1, REQ, False, "desync")
END_CLOSED = ("end", 1, REQ, False, "closed")
CLOSED = ("closed",)

# (state, input) -> events after reaching the state ("data" has emitted b"abc").
TABLE: dict[tuple[str, str], list[tuple[Any, ...]]] = {
    ("preface", "gap1"): [("desync", None, "gap", 1), CLOSED],
    ("head", "gap1"): [REQ1, ("desync", None, "gap", 1), END_DESYNC, CLOSED],
    ("head_partial", "gap1"): [REQ1, ("desync", None, "gap", 1), END_DESYNC,
                               ("desync", None, "resync", 4), CLOSED],
    ("data_pad", "gap1"): [REQ1, ("desync", 1, "gap", 1), END_DESYNC, CLOSED],
    ("data", "gap1"): [REQ1, ("desync", 1, "gap", 1), END_DESYNC, CLOSED],
    ("body", "gap1"): [REQ1, ("desync", None, "gap", 1), END_CLOSED, CLOSED],
    ("skip", "gap1"): [REQ1, ("desync", None, "gap", 1), END_CLOSED, CLOSED],
    ("sync", "gap1"): [("desync", None, "gap", 1), ("desync", None, "resync", 3), CLOSED],
    ("preface", "gap_big"): [("desync", None, "gap", BIG_GAP), CLOSED],
    ("head", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC, CLOSED],
    ("head_partial", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC,
                                  ("desync", None, "resync", 4), CLOSED],
    ("data_pad", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC, CLOSED],
    ("data", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC, CLOSED],
    ("body", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC,
                          ("desync", None, "resync", 6), CLOSED],
    ("skip", "gap_big"): [REQ1, ("desync", None, "gap", BIG_GAP), END_DESYNC, CLOSED],
    ("sync", "gap_big"): [("desync", None, "gap", BIG_GAP), ("desync", None, "resync", 3),
                          CLOSED],
    ("preface", "close"): [CLOSED],
    ("head", "close"): [REQ1, END_CLOSED, CLOSED],
    ("head_partial", "close"): [REQ1, ("desync", None, "truncated", 4), END_CLOSED, CLOSED],
    ("data_pad", "close"): [REQ1, END_CLOSED, CLOSED],
    ("data", "close"): [REQ1, END_CLOSED, CLOSED],
    ("body", "close"): [REQ1, ("desync", None, "truncated", 6), END_CLOSED, CLOSED],
    ("skip", "close"): [REQ1, END_CLOSED, CLOSED],
    ("sync", "close"): [("desync", None, "resync", 3), CLOSED],
    # The rest of the frame, then a DATA frame that ends stream 1.
    ("preface", "rest"): [CLOSED],
    ("head", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("head_partial", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("data_pad", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("data", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("body", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("skip", "rest"): [REQ1, ("end", 1, REQ, True, ""), CLOSED],
    ("sync", "rest"): [("desync", None, "resync", 3), CLOSED],
}
_REST = {"preface": PREFACE[10:], "head": b"", "head_partial": _DATA10[4:],
         "data_pad": _PADDED10.serialize()[9:], "data": _DATA10[12:], "body": _SETTINGS12[15:],
         "skip": _PING[11:], "sync": b""}


@pytest.mark.parametrize(("state", "action"), sorted(TABLE))
def test_every_state_and_input(state: str, action: str) -> None:
    mid_stream, prefix = STATES[state]
    parser = Http2Parser(CONN, mid_stream=mid_stream)
    events = parser.data(REQ, 1, prefix)
    if action == "gap1":
        events += parser.gap(REQ, 2, 1)
    elif action == "gap_big":
        events += parser.gap(REQ, 2, BIG_GAP)
    elif action == "rest":
        ending = frame(DataFrame(1, data=b""), end_stream=True)
        events += parser.data(REQ, 2, _REST[state] + (ending if state != "preface" else b""))
    events += parser.close(3)
    assert shape(events) == TABLE[state, action]
    body = {("data", "rest"): b"abcdefghij", ("head_partial", "rest"): b"abcdefghij",
            ("data_pad", "rest"): b"abcde"}.get((state, action), b"abc" if state == "data" else b"")
    assert bodies(events).get((1, REQ), b"") == body


# ------------------------------------------------------- content, push, sizes


def _exchange(response_headers: list[tuple[str, str]], *data_frames: bytes) -> Segments:
    client = frame(HeadersFrame(1, data=hpack.Encoder().encode(request_headers("/c"))),
                   end_headers=True, end_stream=True)
    server = frame(HeadersFrame(1, data=hpack.Encoder().encode(response_headers)),
                   end_headers=True)
    return [(REQ, PREFACE + client), (RESP, server + b"".join(data_frames))]


def test_corrupt_gzip_ends_the_message_and_counts_the_rest() -> None:
    bad = gzip.compress(b"hello")[:10] + b"\xff" * 10  # BTYPE=11: invalid deflate block
    segments = _exchange([(":status", "200"), ("content-encoding", "gzip")],
                         frame(DataFrame(1, data=bad)),
                         frame(DataFrame(1, data=b"more!"), end_stream=True))
    for split in (lambda d: [d], bytewise):
        events = feed(segments, split)
        assert shape(events) == [("req", 1, "POST", "/c", "api.openai.com", ()),
                                 ("end", 1, REQ, True, ""),
                                 ("resp", 1, 200, (("content-encoding", "gzip"),)),
                                 ("desync", 1, "decoding", 0),
                                 ("end", 1, RESP, False, "decoding"),
                                 ("desync", 1, "decoding", 5), CLOSED]
        assert bodies(events) == {}


def test_unsupported_encoding_is_reported_at_once() -> None:
    events = feed(_exchange([(":status", "200"), ("content-encoding", "compress")],
                            frame(DataFrame(1, data=b"LZW..."), end_stream=True)))
    assert shape(events)[2:] == [("resp", 1, 200, (("content-encoding", "compress"),)),
                                 ("desync", 1, "decoding", 0),
                                 ("end", 1, RESP, False, "decoding"),
                                 ("desync", 1, "decoding", 6), CLOSED]


def test_gzip_body_split_anywhere_decodes_whole() -> None:
    packed = gzip.compress(MSG_JSON)
    segments = _exchange([(":status", "200"), ("content-encoding", "gzip")],
                         frame(DataFrame(1, data=packed[:33])),
                         frame(DataFrame(1, data=packed[33:]), end_stream=True))
    for split in (lambda d: [d], bytewise, random_split(11)):
        events = feed(segments, split)
        assert bodies(events) == {(1, RESP): MSG_JSON}
        assert shape(events)[-2:] == [("end", 1, RESP, True, ""), CLOSED]


def test_pushed_streams_are_counted_not_reported() -> None:
    w = Wire()
    w.client.initiate_connection()
    w.server.initiate_connection()
    w.pump()
    w.client.send_headers(1, request_headers("/page", method="GET"), end_stream=True)
    w.pump()
    w.server.push_stream(1, 2, request_headers("/pushed.css", method="GET"))
    w.server.send_headers(2, [(":status", "200"), ("content-type", "text/css")])
    w.server.send_data(2, b"body{}", end_stream=True)
    w.server.send_headers(1, [(":status", "200")])
    w.server.send_data(1, b"<html>", end_stream=True)
    w.pump()
    events = feed(w.segments)
    assert shape(events) == [("req", 1, "GET", "/page", "api.openai.com", ()),
                             ("end", 1, REQ, True, ""),
                             ("desync", 2, "push", 6),
                             ("resp", 1, 200, ()), ("end", 1, RESP, True, ""), CLOSED]
    assert bodies(events) == {(1, RESP): b"<html>"}


def _big_frames_after_gap(announce: bool) -> list[tuple[Any, ...]]:
    settings_frames = frame(SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 65_536}))
    client = PREFACE + (settings_frames if announce else b"") + frame(
        HeadersFrame(1, data=hpack.Encoder().encode(request_headers("/m"))),
        end_headers=True, end_stream=True)
    server_head = frame(HeadersFrame(1, data=hpack.Encoder().encode([(":status", "200")])),
                        end_headers=True)
    lost = frame(DataFrame(1, data=b"y" * 100))
    after = frame(DataFrame(1, data=b"z" * 20_000)) + frame(DataFrame(1, data=b"z" * 20_000),
                                                          end_stream=True)
    parser = Http2Parser(CONN)
    events = parser.data(REQ, 0, client) + parser.data(RESP, 1, server_head)
    events += parser.gap(RESP, 2, len(lost))
    events += parser.data(RESP, 3, after)
    return shape(events + parser.close(4))[3:]


def test_announced_max_frame_size_lets_resync_accept_big_frames() -> None:
    # Announced: the 20 kB frame after the gap is found at once; its bytes are counted.
    assert _big_frames_after_gap(True) == [("desync", None, "gap", 109), END_DESYNC[:1] + (
        1, RESP, False, "desync"), ("desync", 1, "desync", 40_000), CLOSED]
    # Not announced: a 20 kB frame is implausible, nothing is found.
    assert _big_frames_after_gap(False) == [("desync", None, "gap", 109), END_DESYNC[:1] + (
        1, RESP, False, "desync"), ("desync", None, "resync", 40_018), CLOSED]


def test_hpack_table_realigns_after_a_loss_and_never_guesses() -> None:
    """Blocks that refer to entries added before a loss fail; once the encoder has
    evicted those entries (each request adds its content-length), blocks decode again."""
    enc = hpack.Encoder()
    sent: dict[int, tuple[tuple[str, str], ...]] = {}

    def request(i: int) -> bytes:
        extra = (JSON_CT, AUTH, UA, ("x-stainless-lang", "python"),
                 ("content-length", str(1000 + i)))
        sent[2 * i + 1] = extra
        block = enc.encode(request_headers("/v1/chat/completions", *extra))
        return frame(HeadersFrame(2 * i + 1, data=block), end_headers=True, end_stream=True)

    parser = Http2Parser(CONN)
    events = parser.data(REQ, 0, PREFACE + request(0) + request(1))
    events += parser.gap(REQ, 1, len(request(2)))  # stream 5 never captured
    for i in range(3, 150):
        events += parser.data(REQ, i, request(i))
    events += parser.close(999)
    heads = {e.stream: e.headers for e in events if isinstance(e, RequestHead)}
    failed = [e.stream for e in events if isinstance(e, Desync) and e.reason == "hpack"]
    assert all(heads[s] == sent[s] for s in heads)  # nothing guessed
    recovered = min(s for s in heads if s > 5)
    assert failed == list(range(7, recovered, 2))
    assert sorted(heads) == [1, 3, *range(recovered, 2 * 149 + 2, 2)]
    # A 4096-byte table, 50 bytes added per request: the old entries are gone
    # (and re-sent) after about 80 requests.
    assert 2 * 70 + 1 <= recovered <= 2 * 90 + 1
