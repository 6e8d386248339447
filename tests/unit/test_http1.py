"""HTTP/1.x passive parser: exact events per case, whole / byte-by-byte / random splits."""

from __future__ import annotations

import gzip
import random
import zlib
from itertools import pairwise

import pytest
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
from lumen_sniff.protocol.http1.parser import MAX_HEAD_BYTES, Http1Parser
from tests.support.httpevents import merge
from tests.support.wire import WIRE_DIR, request_samples, wire_response

WIRE = WIRE_DIR
K = ConnKey(source="replay", pid=7, handle=0x1000)
REQ, RESP = Role.REQUEST, Role.RESPONSE
Step = tuple[str, Role, int, bytes | int]

# ------------------------------------------------------------------ helpers


def d(role: Role, ts: int, data: bytes) -> Step:
    return ("data", role, ts, data)


def g(role: Role, ts: int, lost: int) -> Step:
    return ("gap", role, ts, lost)


def c(ts: int) -> Step:
    return ("close", REQ, ts, 0)


def pieces(data: bytes, mode: str | int) -> list[bytes]:
    if mode == "whole" or not data:
        return [data]
    if mode == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(mode)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def run(
    steps: list[Step], mode: str | int = "whole", parser: Http1Parser | None = None
) -> list[HttpEvent]:
    p = parser or Http1Parser(K)
    out: list[HttpEvent] = []
    for kind, role, ts, arg in steps:
        if kind == "data":
            assert isinstance(arg, bytes)
            for piece in pieces(arg, mode):
                out += p.data(role, ts, piece)
                assert p.buffered_bytes <= 2 * MAX_HEAD_BYTES
        elif kind == "gap":
            assert isinstance(arg, int)
            out += p.gap(role, ts, arg)
        else:
            out += p.close(ts)
    return merge(out)


MODES: list[str | int] = ["whole", "bytes", 1, 2, 3, 4]


def check(steps: list[Step], expected: list[HttpEvent]) -> None:
    """The same events whatever way the bytes are split."""
    for mode in MODES:
        assert run(steps, mode) == expected, f"split mode {mode!r}"


def rq(
    stream: int,
    ts: int,
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    authority: str = "",
    version: str = "1.1",
) -> RequestHead:
    return RequestHead(
        conn=K,
        stream=stream,
        ts_ns=ts,
        method=method,
        target=target,
        authority=authority,
        headers=headers,
        http_version=version,
    )


def rs(
    stream: int, ts: int, status: int, headers: tuple[tuple[str, str], ...], version: str = "1.1"
) -> ResponseHead:
    return ResponseHead(
        conn=K, stream=stream, ts_ns=ts, status=status, headers=headers, http_version=version
    )


def body(stream: int, role: Role, ts: int, data: bytes) -> BodyData:
    return BodyData(conn=K, stream=stream, role=role, ts_ns=ts, data=data)


def end(stream: int, role: Role, ts: int, reason: str = "") -> MessageEnd:
    return MessageEnd(
        conn=K, stream=stream, role=role, ts_ns=ts, complete=not reason, reason=reason
    )


def ds(stream: int | None, ts: int, reason: str, lost: int = 0) -> Desync:
    return Desync(conn=K, stream=stream, ts_ns=ts, reason=reason, lost_bytes=lost)


def closed(ts: int) -> ConnClosed:
    return ConnClosed(conn=K, ts_ns=ts)


GET_A = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
GET_A_HEAD = rq(1, 10, "GET", "/a", (("host", "h"),), "h")
OK2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CL2 = (("content-length", "2"),)

# --------------------------------------------------------------- wire samples


RESPONSE_FILES = sorted(p.name for p in WIRE.glob("*.txt") if not p.name.startswith("request_"))

# ---------------------------------------------------------------- framing cases


def test_content_length_exchange() -> None:
    req = (
        b"POST /v1/messages HTTP/1.1\r\nHost: API.anthropic.com\r\nContent-Length: 11\r\n\r\n"
        b'{"a":"bcd"}'
    )
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    check(
        [d(REQ, 10, req), d(RESP, 20, resp), c(30)],
        [
            rq(
                1,
                10,
                "POST",
                "/v1/messages",
                (("host", "API.anthropic.com"), ("content-length", "11")),
                "api.anthropic.com",
            ),
            body(1, REQ, 10, b'{"a":"bcd"}'),
            end(1, REQ, 10),
            rs(1, 20, 200, (("content-type", "application/json"), ("content-length", "2"))),
            body(1, RESP, 20, b"{}"),
            end(1, RESP, 20),
            closed(30),
        ],
    )


def test_process_and_peer_are_copied_into_request_heads() -> None:
    proc = ProcessInfo(pid=42, comm="python3")
    p = Http1Parser(K, proc, ("1.2.3.4", 443))
    (head, _end) = p.data(REQ, 5, GET_A)
    assert isinstance(head, RequestHead)
    assert (head.process, head.peer) == (proc, ("1.2.3.4", 443))


def test_chunked_with_extensions_and_trailers() -> None:
    resp = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\nhello\r\n6 ; name="v"\r\n world\r\nA\r\n0123456789\r\n'
        b"0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
    )
    check(
        [d(REQ, 10, GET_A), d(RESP, 20, resp + OK2)],
        [
            GET_A_HEAD,
            end(1, REQ, 10),
            rs(1, 20, 200, (("transfer-encoding", "chunked"),)),
            body(1, RESP, 20, b"hello world0123456789"),
            end(1, RESP, 20),
            rs(2, 20, 200, CL2),
            body(2, RESP, 20, b"ok"),
            end(2, RESP, 20),
        ],
    )


def test_chunked_bare_lf_and_no_trailer() -> None:
    resp = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n"
    check(
        [d(RESP, 20, resp)],
        [
            rs(1, 20, 200, (("transfer-encoding", "chunked"),)),
            body(1, RESP, 20, b"abc"),
            end(1, RESP, 20),
        ],
    )


def test_read_until_close_response_is_complete_at_close() -> None:
    resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n"
    check(
        [d(REQ, 10, GET_A), d(RESP, 20, resp), d(RESP, 21, b"data: 2\n\n"), c(30)],
        [
            GET_A_HEAD,
            end(1, REQ, 10),
            rs(1, 20, 200, (("content-type", "text/event-stream"),), "1.0"),
            body(1, RESP, 20, b"data: 1\n\ndata: 2\n\n"),
            end(1, RESP, 30),
            closed(30),
        ],
    )


def test_keep_alive_many_exchanges_are_numbered_in_order() -> None:
    steps: list[Step] = []
    for i in range(1, 51):
        steps.append(
            d(REQ, i * 10, b"POST /v1/x HTTP/1.1\r\nContent-Length: 1\r\n\r\n%d" % (i % 10))
        )
        steps.append(d(RESP, i * 10 + 5, OK2))
    events = run(steps, "bytes")
    heads = [
        (type(e).__name__, e.stream) for e in events if isinstance(e, RequestHead | ResponseHead)
    ]
    assert heads == [(k, i) for i in range(1, 51) for k in ("RequestHead", "ResponseHead")]
    ends = [e for e in events if isinstance(e, MessageEnd)]
    assert len(ends) == 100
    assert all(e.complete for e in ends)
    assert run(steps, "whole") == events


def test_pipelined_requests_pair_with_responses_in_order() -> None:
    reqs = GET_A + b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
    resps = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
    )
    check(
        [d(REQ, 10, reqs), d(RESP, 20, resps)],
        [
            GET_A_HEAD,
            end(1, REQ, 10),
            rq(2, 10, "POST", "/b", (("content-length", "3"),)),
            body(2, REQ, 10, b"xyz"),
            end(2, REQ, 10),
            rs(1, 20, 200, (("content-length", "1"),)),
            body(1, RESP, 20, b"a"),
            end(1, RESP, 20),
            rs(2, 20, 201, (("transfer-encoding", "chunked"),)),
            body(2, RESP, 20, b"b"),
            end(2, RESP, 20),
        ],
    )


def test_interim_1xx_responses_are_not_final() -> None:
    req = b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + OK2
    check(
        [d(REQ, 10, req), d(RESP, 20, resp[:25]), d(REQ, 30, b"hi"), d(RESP, 40, resp[25:])],
        [
            rq(1, 10, "POST", "/u", (("expect", "100-continue"), ("content-length", "2"))),
            body(1, REQ, 30, b"hi"),
            end(1, REQ, 30),
            rs(1, 40, 200, CL2),
            body(1, RESP, 40, b"ok"),
            end(1, RESP, 40),
        ],
    )


def test_head_204_304_have_no_body() -> None:
    reqs = b"HEAD / HTTP/1.1\r\n\r\nGET /n HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\n" + GET_A
    resps = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n" + OK2
    )
    check(
        [d(REQ, 10, reqs), d(RESP, 20, resps)],
        [
            rq(1, 10, "HEAD", "/", ()),
            end(1, REQ, 10),
            rq(2, 10, "GET", "/n", ()),
            end(2, REQ, 10),
            rq(3, 10, "GET", "/m", ()),
            end(3, REQ, 10),
            rq(4, 10, "GET", "/a", (("host", "h"),), "h"),
            end(4, REQ, 10),
            rs(1, 20, 200, (("content-length", "1000"),)),
            end(1, RESP, 20),
            rs(2, 20, 204, ()),
            end(2, RESP, 20),
            rs(3, 20, 304, (("content-length", "50"),)),
            end(3, RESP, 20),
            rs(4, 20, 200, CL2),
            body(4, RESP, 20, b"ok"),
            end(4, RESP, 20),
        ],
    )


def test_101_upgrade_stops_parsing() -> None:
    req = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    events = run(
        [
            d(REQ, 10, req),
            d(RESP, 20, resp + b"\x81\x05hello"),
            d(REQ, 30, b"\x81\x85abcdefghi"),
            g(RESP, 40, 100),
            c(50),
        ]
    )
    assert events == [
        rq(1, 10, "GET", "/ws", (("upgrade", "websocket"),)),
        end(1, REQ, 10),
        rs(1, 20, 101, (("upgrade", "websocket"),)),
        end(1, RESP, 20),
        ds(None, 20, "upgrade", 0),  # the first bytes after the upgrade
        ds(None, 50, "upgrade", 11),  # totals per side at close
        ds(None, 50, "upgrade", 7 + 100),
        closed(50),
    ]
    assert run([d(REQ, 10, req), d(RESP, 20, resp + b"\x81\x05hello"), c(50)], "bytes") == [
        *events[:4],
        ds(None, 20, "upgrade", 0),
        ds(None, 50, "upgrade", 7),
        closed(50),
    ]


def test_connect_tunnel_stops_parsing() -> None:
    req = b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n"
    resp = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01"
    check(
        [d(REQ, 10, req), d(RESP, 20, resp), c(30)],
        [
            rq(
                1,
                10,
                "CONNECT",
                "api.openai.com:443",
                (("host", "api.openai.com:443"),),
                "api.openai.com:443",
            ),
            end(1, REQ, 10),
            rs(1, 20, 200, ()),
            end(1, RESP, 20),
            ds(None, 20, "upgrade", 0),
            ds(None, 30, "upgrade", 3),
            closed(30),
        ],
    )


def test_odd_whitespace_folding_and_junk_lines_are_tolerated() -> None:
    req = (
        b"POST  /x \tHTTP/1.1 \r\nHost:  Example.COM  \r\nX-Folded: one\r\n  two\r\n\tthree\r\n"
        b"Name With Space : v\r\nno colon line\r\n:empty-name\r\nContent-Length:3\r\n\r\nabc"
    )
    check(
        [d(REQ, 10, req), d(RESP, 20, b"HTTP/1.1 200\nContent-Length: 2\n\nok")],
        [
            rq(
                1,
                10,
                "POST",
                "/x",
                (
                    ("host", "Example.COM"),
                    ("x-folded", "one two three"),
                    ("name with space", "v"),
                    ("content-length", "3"),
                ),
                "example.com",
            ),
            body(1, REQ, 10, b"abc"),
            end(1, REQ, 10),
            rs(1, 20, 200, CL2),
            body(1, RESP, 20, b"ok"),
            end(1, RESP, 20),
        ],
    )


def test_absolute_form_target_gives_authority() -> None:
    req = b"GET http://Proxy.Example:8080/v1/models HTTP/1.1\r\n\r\n"
    check(
        [d(REQ, 1, req)],
        [
            rq(1, 1, "GET", "http://Proxy.Example:8080/v1/models", (), "proxy.example:8080"),
            end(1, REQ, 1),
        ],
    )


def test_stray_crlf_between_messages_is_skipped() -> None:
    check(
        [d(RESP, 5, b"\r\n" + OK2 + b"\r\n\r\n" + OK2)],
        [
            rs(1, 5, 200, CL2),
            body(1, RESP, 5, b"ok"),
            end(1, RESP, 5),
            rs(2, 5, 200, CL2),
            body(2, RESP, 5, b"ok"),
            end(2, RESP, 5),
        ],
    )


# ------------------------------------------------------------ losing the place


def test_capture_starting_mid_body_resyncs_at_next_head() -> None:
    tail = b'ta: {"x": 1}\n\ndata: [DONE]\n\n'
    check(
        [d(RESP, 5, tail + OK2), c(9)],
        [
            ds(None, 5, "resync", len(tail)),
            rs(1, 5, 200, CL2),
            body(1, RESP, 5, b"ok"),
            end(1, RESP, 5),
            closed(9),
        ],
    )


def test_capture_starting_mid_request_resyncs_on_request_line() -> None:
    tail = b'-Length: 4\r\n\r\n{"a"}GET /a HTTP/1.1 x\r\n'
    check(
        [d(REQ, 5, tail + GET_A)],
        [
            ds(None, 5, "resync", len(tail)),
            rq(1, 5, "GET", "/a", (("host", "h"),), "h"),
            end(1, REQ, 5),
        ],
    )


def test_garbage_only_is_reported_at_close() -> None:
    junk = b"\x00\x01garbage\nmore HTTP/1.1 nope\n" * 3
    assert len(junk) == 87
    check([d(RESP, 5, junk), c(6)], [ds(None, 6, "resync", 87), closed(6)])


def test_bad_start_line_after_sync_is_bad_head() -> None:
    check(
        [d(RESP, 5, OK2 + b"HTTP/2 200 OK\r\n\r\nzz\n" + OK2)],
        [
            rs(1, 5, 200, CL2),
            body(1, RESP, 5, b"ok"),
            end(1, RESP, 5),
            ds(None, 5, "bad_head", 20),
            rs(2, 5, 200, CL2),
            body(2, RESP, 5, b"ok"),
            end(2, RESP, 5),
        ],
    )


def test_resync_finds_a_head_that_starts_mid_line() -> None:
    # A JSON body rarely ends in a newline: the next request follows its "}".
    tail = b'{"model":"gpt-4o","stream":true}'
    check(
        [g(REQ, 1, 100), d(REQ, 2, tail + b"POST /v1/x HTTP/1.1\r\nHost: h\r\n\r\n")],
        [
            ds(None, 2, "gap", 100 + len(tail)),
            rq(2, 2, "POST", "/v1/x", (("host", "h"),), "h"),
            end(2, REQ, 2),
        ],
    )


def test_status_line_quoted_in_a_body_is_not_a_head() -> None:
    quoted = b'data: {"error": "upstream said HTTP/1.1 502 Bad Gateway"}\n\n'
    check(
        [d(RESP, 1, b"x" + quoted + OK2), c(2)],
        [
            ds(None, 1, "resync", 1 + len(quoted)),
            rs(1, 1, 200, CL2),
            body(1, RESP, 1, b"ok"),
            end(1, RESP, 1),
            closed(2),
        ],
    )


def test_head_over_64k_is_a_desync_and_memory_stays_bounded() -> None:
    big = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\nX: y\r\n\r\n"
    p = Http1Parser(K)
    for i in range(0, len(big), 1000):
        p.data(REQ, 1, big[i : i + 1000])
        assert p.buffered_bytes <= MAX_HEAD_BYTES
    check(
        [d(REQ, 5, big + GET_A)],
        [
            ds(None, 5, "head_too_large", len(big)),
            rq(1, 5, "GET", "/a", (("host", "h"),), "h"),
            end(1, REQ, 5),
        ],
    )


def test_long_junk_line_while_lost_is_not_buffered() -> None:
    p = Http1Parser(K)
    junk = b"x" * 200_000
    for i in range(0, len(junk), 512):
        p.data(RESP, 1, junk[i : i + 512])
        assert p.buffered_bytes <= 8192
    assert p.unsynced_bytes == 200_000
    assert not p.has_synced
    assert p.close(2) == [ds(None, 2, "resync", 200_000), closed(2)]


def test_gap_in_identity_content_length_body_keeps_framing() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"
    check(
        [d(REQ, 1, GET_A + GET_A), d(RESP, 2, resp), g(RESP, 3, 4), d(RESP, 4, b"89" + OK2)],
        [
            rq(1, 1, "GET", "/a", (("host", "h"),), "h"),
            end(1, REQ, 1),
            rq(2, 1, "GET", "/a", (("host", "h"),), "h"),
            end(2, REQ, 1),
            rs(1, 2, 200, (("content-length", "10"),)),
            body(1, RESP, 2, b"0123"),
            ds(1, 3, "gap", 4),
            body(1, RESP, 4, b"89"),
            end(1, RESP, 4, "gap"),
            rs(2, 4, 200, CL2),
            body(2, RESP, 4, b"ok"),
            end(2, RESP, 4),
        ],
    )


def test_gap_past_the_end_of_a_content_length_body() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"
    check(
        [d(RESP, 2, resp), g(RESP, 3, 6 + 5), d(RESP, 4, b"tail\n" + OK2)],
        [
            rs(1, 2, 200, (("content-length", "10"),)),
            body(1, RESP, 2, b"0123"),
            ds(1, 3, "gap", 6),
            end(1, RESP, 3, "gap"),
            ds(None, 4, "gap", 5 + 5),
            rs(2, 4, 200, CL2),
            body(2, RESP, 4, b"ok"),
            end(2, RESP, 4),
        ],
    )


def test_gap_in_chunked_body_loses_place_and_resyncs() -> None:
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    after = b"lo\r\n0\r\n\r\n"
    check(
        [d(RESP, 2, resp), g(RESP, 3, 7), d(RESP, 4, after + OK2)],
        [
            rs(1, 2, 200, (("transfer-encoding", "chunked"),)),
            body(1, RESP, 2, b"hel"),
            end(1, RESP, 3, "gap"),
            ds(None, 4, "gap", 7 + len(after)),
            rs(2, 4, 200, CL2),
            body(2, RESP, 4, b"ok"),
            end(2, RESP, 4),
        ],
    )


def test_gap_in_compressed_content_length_body_loses_place() -> None:
    z = gzip.compress(b"x" * 100)
    resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(z)
    check(
        [d(RESP, 2, resp + z[:10]), g(RESP, 3, 5), d(RESP, 4, z[15:] + OK2)],
        [
            rs(1, 2, 200, (("content-encoding", "gzip"), ("content-length", str(len(z))))),
            end(1, RESP, 3, "gap"),
            ds(None, 4, "gap", len(z) - 10),
            rs(2, 4, 200, CL2),
            body(2, RESP, 4, b"ok"),
            end(2, RESP, 4),
        ],
    )


def test_gap_in_read_until_close_body() -> None:
    resp = b"HTTP/1.1 200 OK\r\n\r\nabc"
    check(
        [d(RESP, 2, resp), g(RESP, 3, 9), d(RESP, 4, b"def"), c(5)],
        [
            rs(1, 2, 200, ()),
            body(1, RESP, 2, b"abc"),
            ds(1, 3, "gap", 9),
            body(1, RESP, 4, b"def"),
            end(1, RESP, 5, "gap"),
            closed(5),
        ],
    )


def test_gap_over_a_request_head_keeps_pairs_aligned() -> None:
    # Request 1's head is lost; its response must not be paired with request 2.
    req2 = b"GET /two HTTP/1.1\r\n\r\n"
    check(
        [g(REQ, 1, 30), d(REQ, 2, req2), d(RESP, 3, OK2 + OK2)],
        [
            ds(None, 2, "gap", 30),
            rq(2, 2, "GET", "/two", ()),
            end(2, REQ, 2),
            rs(1, 3, 200, CL2),
            body(1, RESP, 3, b"ok"),
            end(1, RESP, 3),
            rs(2, 3, 200, CL2),
            body(2, RESP, 3, b"ok"),
            end(2, RESP, 3),
        ],
    )


def test_response_without_a_seen_request_gets_a_fresh_number() -> None:
    check(
        [d(RESP, 1, OK2), d(REQ, 2, GET_A), d(RESP, 3, OK2)],
        [
            rs(1, 1, 200, CL2),
            body(1, RESP, 1, b"ok"),
            end(1, RESP, 1),
            rq(2, 2, "GET", "/a", (("host", "h"),), "h"),
            end(2, REQ, 2),
            rs(2, 3, 200, CL2),
            body(2, RESP, 3, b"ok"),
            end(2, RESP, 3),
        ],
    )


def test_unanswered_requests_are_remembered_up_to_a_cap() -> None:
    p = Http1Parser(K)
    for _ in range(1030):
        p.data(REQ, 1, GET_A)
    head = p.data(RESP, 2, OK2)[0]
    assert head == rs(7, 2, 200, CL2)  # requests 1..6 were given up on


def test_close_ends_open_messages_incomplete() -> None:
    check(
        [
            d(REQ, 1, b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"),
            d(RESP, 2, b"HTTP/1.1 200 OK\r\nContent-Le"),
            c(3),
        ],
        [
            rq(1, 1, "POST", "/", (("content-length", "9"),)),
            body(1, REQ, 1, b"abc"),
            end(1, REQ, 3, "closed"),
            ds(None, 3, "closed", 27),
            closed(3),
        ],
    )


@pytest.mark.parametrize(
    ("chunks", "got", "lost"),
    [
        (b"zz\r\nabc", b"", len(b"zz\r\nabc\n")),  # size line not hex
        (b"3\r\nabcX", b"abc", len(b"X\n")),  # no CRLF after the chunk
        (b"1" * 5000, b"", 5001),  # size line over the cap
    ],
)
def test_bad_chunk_framing(chunks: bytes, got: bytes, lost: int) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    check(
        [d(RESP, 1, head + chunks + b"\n" + OK2)],
        [rs(1, 1, 200, (("transfer-encoding", "chunked"),))]
        + ([body(1, RESP, 1, got)] if got else [])
        + [
            end(1, RESP, 1, "desync"),
            ds(None, 1, "bad_chunk", lost),
            rs(2, 1, 200, CL2),
            body(2, RESP, 1, b"ok"),
            end(2, RESP, 1),
        ],
    )


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: 5, 6",
        b"Content-Length: -1",
        b"Content-Length: \xb2",
        b"Transfer-Encoding: gzip",
    ],
)
def test_bad_request_framing_is_a_desync(header: bytes) -> None:
    req = b"POST / HTTP/1.1\r\n" + header + b"\r\n\r\nbody\n" + GET_A
    events = run([d(REQ, 1, req)])
    assert [type(e).__name__ for e in events] == [
        "RequestHead",
        "MessageEnd",
        "Desync",
        "RequestHead",
        "MessageEnd",
    ]
    assert events[1] == end(1, REQ, 1, "desync")
    assert events[2] == ds(None, 1, "bad_framing", 5)
    assert events[3] == rq(2, 1, "GET", "/a", (("host", "h"),), "h")


def test_repeated_equal_content_length_is_accepted() -> None:
    check(
        [d(RESP, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok")],
        [
            rs(1, 1, 200, (("content-length", "2, 2"), ("content-length", "2"))),
            body(1, RESP, 1, b"ok"),
            end(1, RESP, 1),
        ],
    )


def test_response_transfer_encoding_without_chunked_reads_until_close() -> None:
    z = gzip.compress(b"plain")
    check(
        [d(RESP, 1, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + z), c(2)],
        [
            rs(1, 1, 200, (("transfer-encoding", "gzip"),)),
            body(1, RESP, 1, b"plain"),
            end(1, RESP, 2),
            closed(2),
        ],
    )


def test_corrupt_compressed_body_keeps_framing_and_ends_incomplete() -> None:
    resp = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 6\r\n\r\nnotgz!"
    check(
        [d(RESP, 1, resp + OK2)],
        [
            rs(1, 1, 200, (("content-encoding", "gzip"), ("content-length", "6"))),
            ds(1, 1, "decode_error"),
            end(1, RESP, 1, "decode_error"),
            rs(2, 1, 200, CL2),
            body(2, RESP, 1, b"ok"),
            end(2, RESP, 1),
        ],
    )


def test_nothing_after_close() -> None:
    p = Http1Parser(K)
    assert p.close(1) == [closed(1)]
    assert p.data(REQ, 2, GET_A) == []
    assert p.gap(REQ, 2, 5) == []
    assert p.close(3) == []


# ------------------------------------------------------------------ wire samples


@pytest.mark.parametrize("name", RESPONSE_FILES)
def test_recorded_responses_reframed(name: str) -> None:
    writes, text, status, _units = wire_response(name)
    req = request_samples()[0]
    steps = [d(REQ, 1, req)] + [d(RESP, 2, w) for w in writes] + [c(3)]
    for mode in MODES:
        events = run(steps, mode)
        kinds = [type(e).__name__ for e in events]
        assert kinds == [
            "RequestHead",
            "BodyData",
            "MessageEnd",
            "ResponseHead",
            "BodyData",
            "MessageEnd",
            "ConnClosed",
        ], (mode, kinds)
        head, got, last = events[3], events[4], events[5]
        assert isinstance(head, ResponseHead) and head.status == status
        assert isinstance(got, BodyData) and got.data == text
        assert last == end(1, RESP, 2)


def test_gzip_sse_comes_out_event_by_event() -> None:
    writes, text, _status, units = wire_response("anthropic_messages_stream_gzip_tooluse.txt")
    p = Http1Parser(K)
    p.data(REQ, 0, request_samples()[0])
    first = p.data(RESP, 1, writes[0])
    assert [type(e).__name__ for e in first] == ["ResponseHead"]
    got = []
    for i, w in enumerate(writes[1:], start=2):
        events = p.data(RESP, i, w)
        got.append(events[0])
    assert units == 10
    assert [e.ts_ns for e in got] == list(range(2, 12))
    assert all(isinstance(e, BodyData) for e in got)
    assert b"".join(e.data for e in got if isinstance(e, BodyData)) == text
    assert next(e.data for e in got if isinstance(e, BodyData)).startswith(b"event: message_s")


def test_recorded_sdk_requests() -> None:
    reqs = request_samples()
    assert len(reqs) == 14
    events = run([d(REQ, 1, b"".join(reqs))], "bytes")
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.stream for h in heads] == list(range(1, 15))
    assert heads[0].target == "/v1/chat/completions"
    assert heads[0].authority == "localhost:8444"
    assert ("authorization", "Bearer sk-test") in heads[0].headers
    assert heads[9].target == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert heads[-1].target == "/v1/responses"
    assert ("x-stainless-lang", "python") in heads[-1].headers  # v3 sends lower-case names
    bodies = [e.data for e in events if isinstance(e, BodyData)]
    assert bodies[0] == b'{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}'


# -------------------------------------------------------------------- properties


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[list[Step], list[tuple[str, bytes, int, bytes]]]:
    """Well-formed keep-alive traffic plus what each exchange should decode to."""
    steps: list[Step] = []
    expect = []
    for i in range(draw(st.integers(1, 4))):
        method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
        req_body = draw(st.binary(max_size=80)) if method == "POST" else b""
        if method == "POST" and draw(st.booleans()):
            frame = b"Transfer-Encoding: chunked\r\n\r\n" + _chunk(req_body, draw)
        else:
            frame = b"Content-Length: %d\r\n\r\n" % len(req_body) + req_body
        steps.append(
            d(REQ, 10 * i, b"%s /p%d HTTP/1.1\r\nHost: x\r\n" % (method.encode(), i) + frame)
        )
        status = draw(st.sampled_from([200, 204, 304, 429]))
        resp_body = draw(st.binary(max_size=300))
        coding = draw(st.sampled_from(["", "gzip", "deflate"]))
        wire_body = {
            "": resp_body,
            "gzip": gzip.compress(resp_body),
            "deflate": zlib.compress(resp_body),
        }[coding]
        head = b"HTTP/1.1 %d X\r\n" % status
        if coding:
            head += b"Content-Encoding: %s\r\n" % coding.encode()
        if draw(st.booleans()):
            head += b"Transfer-Encoding: chunked\r\n\r\n"
            framed = _chunk(wire_body, draw)
        else:
            head += b"Content-Length: %d\r\n\r\n" % len(wire_body)
            framed = wire_body
        no_body = method == "HEAD" or status in (204, 304)
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
        steps.append(d(RESP, 10 * i + 5, interim + head + (b"" if no_body else framed)))
        expect.append((method, req_body, status, b"" if no_body else resp_body))
    return steps, expect


def _chunk(data: bytes, draw: st.DrawFn) -> bytes:
    out, pos = b"", 0
    while pos < len(data):
        n = draw(st.integers(1, max(1, len(data) - pos)))
        out += b"%x\r\n%s\r\n" % (n, data[pos : pos + n])
        pos += n
    return out + b"0\r\n\r\n"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic=exchanges(), seed=st.integers(0, 2**32))
def test_any_split_gives_the_same_events(
    traffic: tuple[list[Step], list[tuple[str, bytes, int, bytes]]], seed: int
) -> None:
    steps, expect = traffic
    whole = run(steps)
    assert run(steps, seed) == whole
    assert run(steps, "bytes") == whole
    heads = [e for e in whole if isinstance(e, ResponseHead)]
    assert [(h.stream, h.status) for h in heads] == [
        (i, s) for i, (_m, _b, s, _r) in enumerate(expect, start=1)
    ]
    for i, (_m, req_body, _s, resp_body) in enumerate(expect, start=1):
        got = {(e.role, e.data) for e in whole if isinstance(e, BodyData) and e.stream == i}
        assert got == {(r, b) for r, b in ((REQ, req_body), (RESP, resp_body)) if b}
    ends = [e for e in whole if isinstance(e, MessageEnd)]
    assert len(ends) == 2 * len(expect) and all(e.complete for e in ends)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.sampled_from([REQ, RESP]), st.binary(max_size=200)),
            st.tuples(
                st.sampled_from([REQ, RESP]),
                st.sampled_from(
                    [
                        GET_A,
                        OK2,
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                        b"5\r\n",
                        b"\r\n",
                        b"0\r\n\r\n",
                        b"HTTP/1.1 101 S\r\n\r\n",
                        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n",
                        b"HTTP/1.1 100 C\r\n\r\n",
                    ]
                ),
            ),
            st.tuples(st.sampled_from([REQ, RESP]), st.integers(0, 100_000)),
        ),
        max_size=30,
    )
)
def test_arbitrary_input_never_raises_and_stays_bounded(
    ops: list[tuple[Role, bytes | int]],
) -> None:
    p = Http1Parser(K)
    for ts, (role, arg) in enumerate(ops):
        events = p.data(role, ts, arg) if isinstance(arg, bytes) else p.gap(role, ts, arg)
        assert all(e.conn == K for e in events)
        assert p.buffered_bytes <= 2 * MAX_HEAD_BYTES
    last = p.close(len(ops))
    assert last[-1] == closed(len(ops))
