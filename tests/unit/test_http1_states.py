"""The HTTP/1 state table, tested across every (state, input) pair.

Each state is reached on the response side by real bytes (checked against the
parser's state), then takes each input: a 1-byte gap, a large gap, the end of the
connection, the bytes that finish the message, and junk. The bytes are also fed
one at a time on the way in: the events must not depend on chunking.
"""

from __future__ import annotations

from typing import Any

import pytest

from lumen_sniff.model import (
    BodyData,
    ConnClosed,
    ConnKey,
    Desync,
    HttpEvent,
    MessageEnd,
    RequestHead,
    ResponseHead,
    Role,
)
from lumen_sniff.protocol.http1.parser import Http1Parser
from lumen_sniff.protocol.http1.side import (
    CHUNK_CRLF,
    CHUNK_DATA,
    CHUNK_SIZE,
    HEAD,
    LENGTH,
    LOST,
    TRAILERS,
    UNTIL_CLOSE,
    UPGRADED,
)

Shape = tuple[Any, ...]
CONN = ConnKey(source="pcap", pid=0, handle=1)
REQ, RESP = Role.REQUEST, Role.RESPONSE
GET = b"GET /s HTTP/1.1\r\nHost: h\r\n\r\n"
UPG = b"GET /s HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
CH = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
STATES = {
    "head": (GET, b"HTTP/1.1 204 No Content\r\n\r\n"),
    "length": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "chunk_size": (GET, CH + b"3\r\nabc\r\n"),
    "chunk_data": (GET, CH + b"5\r\nab"),
    "chunk_crlf": (GET, CH + b"3\r\nabc"),
    "trailers": (GET, CH + b"0\r\nX-T: 1\r\n"),
    "until_close": (GET, b"HTTP/1.1 200 OK\r\n\r\nabc"),
    "lost": (b"", b"xyz\r\n"),
    "upgraded": (UPG, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nabc"),
}
REST = {
    "head": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "length": b"defghij",
    "chunk_size": b"0\r\n\r\n",
    "chunk_data": b"cde\r\n0\r\n\r\n",
    "chunk_crlf": b"\r\n0\r\n\r\n",
    "trailers": b"\r\n",
    "until_close": b"defg",
    "lost": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "upgraded": b"defg",
}
JUNK = b"\x00\x01 junk\r\n"
ACTIONS = ("gap1", "gap_big", "close", "rest", "junk")

# state -> (the state number reached, events on the way there)
REACHED: dict[str, tuple[int, list[Shape]]] = {
    "head": (
        HEAD,
        [
            ("req", 1, "GET"),
            ("end", 1, "REQUEST", True, ""),
            ("resp", 1, 204),
            ("end", 1, "RESPONSE", True, ""),
        ],
    ),
    "length": (LENGTH, [("req", 1, "GET"), ("end", 1, "REQUEST", True, ""), ("resp", 1, 200)]),
    "chunk_size": (
        CHUNK_SIZE,
        [
            ("req", 1, "GET"),
            ("end", 1, "REQUEST", True, ""),
            ("resp", 1, 200),
            ("body", 1, "RESPONSE", b"abc"),
        ],
    ),
    "chunk_data": (
        CHUNK_DATA,
        [("req", 1, "GET"), ("end", 1, "REQUEST", True, ""), ("resp", 1, 200)],
    ),
    "chunk_crlf": (
        CHUNK_CRLF,
        [
            ("req", 1, "GET"),
            ("end", 1, "REQUEST", True, ""),
            ("resp", 1, 200),
            ("body", 1, "RESPONSE", b"abc"),
        ],
    ),
    "trailers": (TRAILERS, [("req", 1, "GET"), ("end", 1, "REQUEST", True, ""), ("resp", 1, 200)]),
    "until_close": (
        UNTIL_CLOSE,
        [("req", 1, "GET"), ("end", 1, "REQUEST", True, ""), ("resp", 1, 200)],
    ),
    "lost": (LOST, []),
    "upgraded": (
        UPGRADED,
        [
            ("req", 1, "GET"),
            ("end", 1, "REQUEST", True, ""),
            ("resp", 1, 101),
            ("end", 1, "RESPONSE", True, ""),
            ("desync", None, "upgrade", 0),
        ],
    ),
}
# (state, input) -> events after reaching the state, close included
TABLE: dict[tuple[str, str], list[Shape]] = {
    ("head", "gap1"): [("desync", None, "gap", 1), ("closed",)],
    ("head", "gap_big"): [("desync", None, "gap", 1000000), ("closed",)],
    ("head", "close"): [("closed",)],
    ("head", "rest"): [
        ("resp", 2, 200),
        ("body", 2, "RESPONSE", b"ok"),
        ("end", 2, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("head", "junk"): [("desync", None, "bad_head", 9), ("closed",)],
    ("length", "gap1"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("desync", 1, "gap", 1),
        ("end", 1, "RESPONSE", False, "closed"),
        ("closed",),
    ],
    ("length", "gap_big"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("desync", 1, "gap", 7),
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 999993),
        ("closed",),
    ],
    ("length", "close"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("end", 1, "RESPONSE", False, "closed"),
        ("closed",),
    ],
    ("length", "rest"): [
        ("body", 1, "RESPONSE", b"abcdefghij"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("length", "junk"): [
        ("body", 1, "RESPONSE", b"abc\x00\x01 junk"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("chunk_size", "gap1"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1),
        ("closed",),
    ],
    ("chunk_size", "gap_big"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1000000),
        ("closed",),
    ],
    ("chunk_size", "close"): [("end", 1, "RESPONSE", False, "closed"), ("closed",)],
    ("chunk_size", "rest"): [("end", 1, "RESPONSE", True, ""), ("closed",)],
    ("chunk_size", "junk"): [
        ("end", 1, "RESPONSE", False, "desync"),
        ("desync", None, "bad_chunk", 9),
        ("closed",),
    ],
    ("chunk_data", "gap1"): [
        ("body", 1, "RESPONSE", b"ab"),
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1),
        ("closed",),
    ],
    ("chunk_data", "gap_big"): [
        ("body", 1, "RESPONSE", b"ab"),
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1000000),
        ("closed",),
    ],
    ("chunk_data", "close"): [
        ("body", 1, "RESPONSE", b"ab"),
        ("end", 1, "RESPONSE", False, "closed"),
        ("closed",),
    ],
    ("chunk_data", "rest"): [
        ("body", 1, "RESPONSE", b"abcde"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("chunk_data", "junk"): [
        ("body", 1, "RESPONSE", b"ab\x00\x01 "),
        ("end", 1, "RESPONSE", False, "desync"),
        ("desync", None, "bad_chunk", 6),
        ("closed",),
    ],
    ("chunk_crlf", "gap1"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1),
        ("closed",),
    ],
    ("chunk_crlf", "gap_big"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1000000),
        ("closed",),
    ],
    ("chunk_crlf", "close"): [("end", 1, "RESPONSE", False, "closed"), ("closed",)],
    ("chunk_crlf", "rest"): [("end", 1, "RESPONSE", True, ""), ("closed",)],
    ("chunk_crlf", "junk"): [
        ("end", 1, "RESPONSE", False, "desync"),
        ("desync", None, "bad_chunk", 9),
        ("closed",),
    ],
    ("trailers", "gap1"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1),
        ("closed",),
    ],
    ("trailers", "gap_big"): [
        ("end", 1, "RESPONSE", False, "gap"),
        ("desync", None, "gap", 1000000),
        ("closed",),
    ],
    ("trailers", "close"): [("end", 1, "RESPONSE", False, "closed"), ("closed",)],
    ("trailers", "rest"): [("end", 1, "RESPONSE", True, ""), ("closed",)],
    ("trailers", "junk"): [("end", 1, "RESPONSE", False, "closed"), ("closed",)],
    ("until_close", "gap1"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("desync", 1, "gap", 1),
        ("end", 1, "RESPONSE", False, "gap"),
        ("closed",),
    ],
    ("until_close", "gap_big"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("desync", 1, "gap", 1000000),
        ("end", 1, "RESPONSE", False, "gap"),
        ("closed",),
    ],
    ("until_close", "close"): [
        ("body", 1, "RESPONSE", b"abc"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("until_close", "rest"): [
        ("body", 1, "RESPONSE", b"abcdefg"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("until_close", "junk"): [
        ("body", 1, "RESPONSE", b"abc\x00\x01 junk\r\n"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("lost", "gap1"): [("desync", None, "resync", 6), ("closed",)],
    ("lost", "gap_big"): [("desync", None, "resync", 1000005), ("closed",)],
    ("lost", "close"): [("desync", None, "resync", 5), ("closed",)],
    ("lost", "rest"): [
        ("desync", None, "resync", 5),
        ("resp", 1, 200),
        ("body", 1, "RESPONSE", b"ok"),
        ("end", 1, "RESPONSE", True, ""),
        ("closed",),
    ],
    ("lost", "junk"): [("desync", None, "resync", 14), ("closed",)],
    ("upgraded", "gap1"): [("desync", None, "upgrade", 4), ("closed",)],
    ("upgraded", "gap_big"): [("desync", None, "upgrade", 1000003), ("closed",)],
    ("upgraded", "close"): [("desync", None, "upgrade", 3), ("closed",)],
    ("upgraded", "rest"): [("desync", None, "upgrade", 7), ("closed",)],
    ("upgraded", "junk"): [("desync", None, "upgrade", 12), ("closed",)],
}


def shape(events: list[HttpEvent]) -> list[Shape]:
    """Events as tuples; consecutive bodies of one message merged."""
    out: list[Shape] = []
    for e in events:
        if isinstance(e, BodyData):
            if out and out[-1][0] == "body" and out[-1][1:3] == (e.stream, e.role.name):
                out[-1] = (*out[-1][:3], out[-1][3] + e.data)
            else:
                out.append(("body", e.stream, e.role.name, e.data))
        elif isinstance(e, RequestHead):
            out.append(("req", e.stream, e.method))
        elif isinstance(e, ResponseHead):
            out.append(("resp", e.stream, e.status))
        elif isinstance(e, MessageEnd):
            out.append(("end", e.stream, e.role.name, e.complete, e.reason))
        elif isinstance(e, Desync):
            out.append(("desync", e.stream, e.reason, e.lost_bytes))
        elif isinstance(e, ConnClosed):
            out.append(("closed",))
    return out


def test_the_table_covers_every_state_and_input() -> None:
    assert {REACHED[s][0] for s in STATES} == set(range(len(Http1Parser(CONN)._handlers)))
    assert set(TABLE) == {(s, a) for s in STATES for a in ACTIONS}


@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize(("state", "action"), sorted(TABLE))
def test_every_state_and_input(state: str, action: str, split: bool) -> None:
    request, response = STATES[state]
    parser = Http1Parser(CONN)
    events = parser.data(REQ, 1, request) if request else []
    pieces = [response[i : i + 1] for i in range(len(response))] if split else [response]
    for piece in pieces:
        events += parser.data(RESP, 1, piece)
    reached, on_the_way = REACHED[state]
    assert parser._sides[RESP].state == reached
    if action == "gap1":
        events += parser.gap(RESP, 2, 1)
    elif action == "gap_big":
        events += parser.gap(RESP, 2, 10**6)
    elif action == "rest":
        events += parser.data(RESP, 2, REST[state])
    elif action == "junk":
        events += parser.data(RESP, 2, JUNK)
    events += parser.close(3)
    assert shape(events) == on_the_way + TABLE[state, action]
