"""Committed exchange fixtures match a fresh recording (``make fixtures``).

``make fixtures`` records on fixed ports, since Host and ``:authority`` are part
of the recorded bytes. This check records on ephemeral ports (another checkout on
the same machine may hold the fixed ones) and puts the committed port back before
comparing: in HTTP/1.1 bytes directly (both ports have five digits, so lengths
and Content-Length stay the same), in HTTP/2 in the decoded header blocks, since
HPACK may Huffman-code the two ports to different lengths.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import hpack
import pytest

from tests.support.fixtures import EXCHANGES_DIR, semantic_view
from tests.support.make_fixtures import record_all

_HEADERS, _CONTINUATION = 0x1, 0x9
_ANY_PORT = re.compile(r"127\.0\.0\.1:\d+")


def _with_port(doc: dict[str, Any], port: int) -> dict[str, Any]:
    """``doc`` as if recorded on ``port``: every ``127.0.0.1:<its port>`` rewritten."""
    was, now = b"127.0.0.1:%d" % doc["port"], b"127.0.0.1:%d" % port
    assert len(was) == len(now), (was, now)
    chunks = [
        {**c, "data_b64": base64.b64encode(base64.b64decode(c["data_b64"]).replace(was, now))
         .decode()}
        for c in doc["chunks"]
    ]  # fmt: skip
    return {**doc, "chunks": chunks, "port": port}


def _h2_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The semantic view with each HEADERS payload replaced by its decoded fields."""
    view = semantic_view(doc)
    for conn in view["connections"]:
        for side in conn.values():
            decoder = hpack.Decoder()
            for frames in side["streams"].values():
                for i, frame in enumerate(frames):
                    ftype, flags, payload = frame.split(":", 2)
                    if int(ftype) in (_HEADERS, _CONTINUATION):
                        fields = decoder.decode(_block(int(flags), bytes.fromhex(payload)))
                        text = _ANY_PORT.sub("127.0.0.1:PORT", str(fields))
                        frames[i] = f"{ftype}:{flags}:{text}"
    return view


def _block(flags: int, payload: bytes) -> bytes:
    """The header block fragment of a HEADERS payload (padding and priority removed)."""
    pad = payload[0] if flags & 0x8 else 0
    start = (1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0)
    return payload[start : len(payload) - pad]


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    return _h2_view(doc) if doc["http_version"] == "2" else semantic_view(doc)


def _server_side(doc: dict[str, Any]) -> dict[str, Any]:
    """The semantic view without the client's identity and request bytes."""
    view = _view(doc)
    del view["client"]
    for conn in view["connections"]:
        conn.pop("egress", None)
    return view


@pytest.mark.slow
def test_regenerated_fixtures_do_not_drift(tmp_path: Path) -> None:
    record_all(tmp_path, tls_port=0, plain_port=0)
    for committed in sorted(EXCHANGES_DIR.glob("*.json")):
        old = json.loads(committed.read_text())
        fresh = _with_port(json.loads((tmp_path / committed.name).read_text()), old["port"])
        if fresh["client"] != old["client"]:
            # node and curl come from the system, not from pyproject.toml: another
            # version sends other request bytes. The stand-in's answer and the usage
            # the client reported must still be what was committed.
            assert _server_side(fresh) == _server_side(old), f"{committed.name} drifted"
            continue
        assert _view(fresh) == _view(old), f"{committed.name} drifted"
        if old["http_version"] == "1.1":
            # Plaintext HTTP/1.1 exchanges regenerate byte for byte, timestamps included.
            assert fresh == old, f"{committed.name} is not byte-identical"
