"""Content-Encoding decoders: every coding, chained, streamed, split anyhow, broken."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from itertools import pairwise

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.protocol.decoding import make_decoder
from tests.support.wire import WIRE_DIR

WIRE = WIRE_DIR
TEXT = b'{"id":"msg_1","usage":{"input_tokens":12,"output_tokens":34}}\n' * 40


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def _decode_all(coding: str | None, pieces: list[bytes]) -> tuple[bytes, str | None]:
    dec = make_decoder(coding)
    out = b"".join(dec.decode(p) for p in pieces) + dec.flush()
    return out, dec.error


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


@pytest.mark.parametrize("coding", [None, "", "identity", " Identity "])
def test_identity_passes_bytes_through(coding: str | None) -> None:
    dec = make_decoder(coding)
    assert dec.decode(b"abc") == b"abc"
    assert dec.decode(b"") == b""
    assert dec.flush() == b""
    assert dec.error is None


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_each_coding_whole_and_byte_by_byte(coding: str) -> None:
    wire = ENCODERS[coding](TEXT)
    assert _decode_all(coding, [wire]) == (TEXT, None)
    assert _decode_all(coding, [bytes([b]) for b in wire]) == (TEXT, None)


def test_names_are_case_and_space_insensitive_and_x_gzip_is_gzip() -> None:
    wire = gzip.compress(TEXT)
    assert _decode_all("  GZip ", [wire]) == (TEXT, None)
    assert _decode_all("x-gzip", [wire]) == (TEXT, None)


def test_gzip_multi_member_and_zero_padding() -> None:
    wire = gzip.compress(b"first ") + gzip.compress(b"second") + b"\x00\x00\x00"
    assert _decode_all("gzip", [wire]) == (b"first second", None)
    assert _decode_all("gzip", [bytes([b]) for b in wire]) == (b"first second", None)


def test_gzip_trailing_garbage_is_an_error() -> None:
    dec = make_decoder("gzip")
    assert dec.decode(gzip.compress(b"ok") + b"junk") == b""
    assert dec.error == "trailing_garbage"


def test_corrupt_stream_sets_error_and_goes_quiet() -> None:
    dec = make_decoder("gzip")
    assert dec.decode(b"not gzip at all") == b""
    assert dec.error == "decode_error"
    assert dec.decode(gzip.compress(b"later")) == b""
    assert dec.flush() == b""
    assert dec.error == "decode_error"


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_truncated_stream_is_reported_at_flush(coding: str) -> None:
    wire = ENCODERS[coding](TEXT)
    dec = make_decoder(coding)
    got = dec.decode(wire[: len(wire) // 2])
    got += dec.flush()
    assert TEXT.startswith(got)
    assert dec.error == "truncated"


def test_deflate_raw_fallback() -> None:
    wire = _deflate_raw(TEXT)
    assert _decode_all("deflate", [wire]) == (TEXT, None)
    assert _decode_all("deflate", [bytes([b]) for b in wire]) == (TEXT, None)


def test_zstd_several_frames() -> None:
    c = zstandard.ZstdCompressor()
    wire = c.compress(b"one ") + c.compress(b"two ") + c.compress(b"three")
    assert _decode_all("zstd", [wire]) == (b"one two three", None)
    assert _decode_all("zstd", [bytes([b]) for b in wire]) == (b"one two three", None)


def test_chained_codings_are_undone_in_reverse() -> None:
    # "gzip, br": gzip was applied first, then br.
    wire = brotli.compress(gzip.compress(TEXT))
    assert _decode_all("gzip, br", [wire]) == (TEXT, None)
    wire2 = gzip.compress(zstandard.ZstdCompressor().compress(TEXT))
    assert _decode_all("zstd,gzip", [bytes([b]) for b in wire2]) == (TEXT, None)
    assert _decode_all("identity, gzip", [gzip.compress(TEXT)]) == (TEXT, None)


@pytest.mark.parametrize("coding", ["compress", "gzip, lzma", "exi"])
def test_unknown_coding(coding: str) -> None:
    dec = make_decoder(coding)
    assert dec.error == "unsupported_encoding"
    assert dec.decode(b"anything") == b""
    assert dec.flush() == b""


def _sse_events() -> list[bytes]:
    raw = (WIRE / "anthropic_messages_stream_gzip_tooluse.txt").read_bytes()
    data = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"#"))
    body = data.split(b"\r\n\r\n", 1)[1]
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]
    assert b"".join(events) == body
    return events


def _flushed(coding: str, events: list[bytes]) -> list[bytes]:
    """Compress ``events`` as one stream, flushed after each event (as servers do)."""
    if coding == "gzip":
        gz = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        pieces = [gz.compress(e) + gz.flush(zlib.Z_SYNC_FLUSH) for e in events]
        pieces[-1] += gz.flush()
    elif coding == "br":
        bc = brotli.Compressor()
        pieces = [bc.process(e) + bc.flush() for e in events]
        pieces[-1] += bc.finish()
    else:
        zc = zstandard.ZstdCompressor().compressobj()
        pieces = [zc.compress(e) + zc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for e in events]
        pieces[-1] += zc.flush()
    return pieces


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_flushed_event_stream_yields_each_event_when_its_bytes_arrive(coding: str) -> None:
    events = _sse_events()
    assert len(events) == 10
    dec = make_decoder(coding)
    got = [dec.decode(piece) for piece in _flushed(coding, events)]
    assert got == events
    assert dec.flush() == b""
    assert dec.error is None


@settings(max_examples=60, deadline=None)
@given(
    coding=st.sampled_from(sorted(ENCODERS)),
    payload=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_gives_the_same_output(coding: str, payload: bytes, cuts: list[int]) -> None:
    wire = ENCODERS[coding](payload)
    assert _decode_all(coding, _split(wire, cuts)) == (payload, None)


@settings(max_examples=150, deadline=None)
@given(
    coding=st.sampled_from(["gzip", "deflate", "br", "zstd", "gzip, br", "bogus", None]),
    junk=st.lists(st.binary(max_size=64), max_size=8),
)
def test_arbitrary_bytes_never_raise(coding: str | None, junk: list[bytes]) -> None:
    dec = make_decoder(coding)
    for piece in junk:
        assert isinstance(dec.decode(piece), bytes)
    assert isinstance(dec.flush(), bytes)
    if dec.error is not None:
        assert dec.decode(b"\x1f\x8b") == b""
