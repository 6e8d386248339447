"""Incremental Content-Encoding decoders: compressed body bytes in, plain bytes out.

Strategy: a :class:`ContentDecoder` is a chain of stages, one per coding named in
the header, applied in reverse order (``Content-Encoding: gzip, br`` means gzip
was applied first, so br is undone first). Each stage hands on every byte it can
decode as soon as it arrives: an SSE stream that the server compressed and
flushed event by event (Anthropic, 2026) comes out event by event. Stages hold
no input of their own beyond a two-byte header peek; what they buffer is the
codec's own window.

A decoder never raises. A corrupt or unsupported stream sets :attr:`error` and
every later call returns ``b""``, so the HTTP parser keeps its framing and marks
the message incomplete.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

__all__ = ["ContentDecoder", "make_decoder"]

_GZIP_MAGIC = b"\x1f\x8b"
_ALIASES = {"x-gzip": "gzip"}
_IDENTITY = frozenset({"", "identity", "none"})


class _DecodeFailed(Exception):
    """A stage met bytes it cannot decode; ``str(self)`` is the error label."""


class _Stage(Protocol):
    def decode(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _GzipStage:
    """gzip, including several members back to back (RFC 1952 allows it)."""

    __slots__ = ("_d", "_peek", "_seen")

    def __init__(self) -> None:
        self._d: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._peek = b""  # bytes after a finished member, until we know what follows
        self._seen = False

    def decode(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._d is None:
                data = self._peek + data
                self._peek = b""
                if data[:2] == _GZIP_MAGIC:
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif data == _GZIP_MAGIC[:1]:
                    self._peek = data
                    break
                elif data.count(0) == len(data):
                    break  # zero padding after the last member, as gzip(1) tolerates
                else:
                    raise _DecodeFailed("trailing_garbage")
            self._seen = True
            try:
                out.append(self._d.decompress(data))
            except zlib.error as exc:
                raise _DecodeFailed("decode_error") from exc
            if not self._d.eof:
                break
            data = self._d.unused_data
            self._d = None
        return b"".join(out)

    def flush(self) -> bytes:
        if self._d is None:
            return b""
        tail = self._d.flush()
        if self._seen and not self._d.eof:
            raise _DecodeFailed("truncated")
        return tail


class _DeflateStage:
    """HTTP "deflate": zlib-wrapped by the RFC, raw DEFLATE from some servers."""

    __slots__ = ("_d", "_peek")

    def __init__(self) -> None:
        self._d: zlib._Decompress | None = None
        self._peek = b""

    def decode(self, data: bytes) -> bytes:
        if self._d is None:
            data = self._peek + data
            if len(data) < 2:
                self._peek = data
                return b""
            self._peek = b""
            cmf, flg = data[0], data[1]
            wrapped = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
            self._d = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._d.eof:
            return b""  # bytes after the end of the stream carry nothing
        try:
            return self._d.decompress(data)
        except zlib.error as exc:
            raise _DecodeFailed("decode_error") from exc

    def flush(self) -> bytes:
        if self._d is None:
            if self._peek:
                raise _DecodeFailed("truncated")
            return b""
        tail = self._d.flush()
        if not self._d.eof:
            raise _DecodeFailed("truncated")
        return tail


class _BrotliStage:
    """br (RFC 7932)."""

    __slots__ = ("_d", "_seen")

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._seen = False

    def decode(self, data: bytes) -> bytes:
        self._seen = True
        try:
            out: bytes = self._d.process(data)
        except brotli.error as exc:
            raise _DecodeFailed("decode_error") from exc
        return out

    def flush(self) -> bytes:
        if self._seen and not self._d.is_finished():
            raise _DecodeFailed("truncated")
        return b""


class _ZstdStage:
    """zstd (RFC 8878), several frames back to back allowed."""

    __slots__ = ("_d", "_dctx", "_seen")

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._seen = False

    def decode(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            self._seen = True
            try:
                out.append(self._d.decompress(data))
            except zstandard.ZstdError as exc:
                raise _DecodeFailed("decode_error") from exc
            if not self._d.eof:
                break
            data = self._d.unused_data
            self._d = self._dctx.decompressobj()
            self._seen = False
        return b"".join(out)

    def flush(self) -> bytes:
        if self._seen and not self._d.eof:
            raise _DecodeFailed("truncated")
        return b""


_STAGES: dict[str, type[_GzipStage | _DeflateStage | _BrotliStage | _ZstdStage]] = {
    "gzip": _GzipStage,
    "deflate": _DeflateStage,
    "br": _BrotliStage,
    "zstd": _ZstdStage,
}


class ContentDecoder:
    """Undoes one message's content codings, incrementally.

    Build it with :func:`make_decoder`. Feed body bytes in wire order to
    :meth:`decode`, then call :meth:`flush` once at the end of the message.
    """

    __slots__ = ("_stages", "error")

    def __init__(self, stages: list[_Stage], error: str | None = None) -> None:
        self._stages = stages
        self.error: str | None = error
        """Why decoding stopped ("unsupported_encoding", "decode_error", "truncated",
        "trailing_garbage"), or None while all is well."""

    def decode(self, data: bytes) -> bytes:
        """Decode the next body bytes.

        Args:
            data: Encoded bytes, in order.

        Returns:
            Every byte that can be decoded so far; ``b""`` once :attr:`error` is set.
        """
        if self.error is not None:
            return b""
        try:
            for stage in self._stages:
                if not data:
                    break
                data = stage.decode(data)
        except _DecodeFailed as exc:
            self.error = str(exc)
            return b""
        return data

    def flush(self) -> bytes:
        """End of the message: return what the codecs still held.

        Sets :attr:`error` to ``"truncated"`` when a compressed stream stopped
        before its end marker.
        """
        if self.error is not None:
            return b""
        out = b""
        try:
            for stage in self._stages:
                # What an outer stage releases at its end still has to pass the
                # inner stages before they are flushed in turn.
                out = (stage.decode(out) if out else b"") + stage.flush()
        except _DecodeFailed as exc:
            self.error = str(exc)
            return b""
        return out


def make_decoder(content_encoding: str | None) -> ContentDecoder:
    """Build a decoder for a Content-Encoding (or Transfer-Encoding) value.

    Args:
        content_encoding: The header value, e.g. ``"gzip"`` or ``"gzip, br"``;
            None or ``"identity"`` gives a pass-through decoder.

    Returns:
        A fresh decoder. Unknown codings give one whose :attr:`ContentDecoder.error`
        is already ``"unsupported_encoding"``.
    """
    stages: list[_Stage] = []
    if content_encoding:
        for token in reversed(content_encoding.split(",")):
            name = token.strip().lower()
            name = _ALIASES.get(name, name)
            if name in _IDENTITY:
                continue
            stage = _STAGES.get(name)
            if stage is None:
                return ContentDecoder([], error="unsupported_encoding")
            stages.append(stage())
    return ContentDecoder(stages)
