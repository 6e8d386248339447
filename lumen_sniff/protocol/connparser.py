"""The contract between the connection tracker and the per-protocol parsers.

The tracker (``protocol/tracker.py``) owns one parser per connection. It maps
each Chunk's Direction to a Role (which side sends requests is judged from the
bytes: a request line or the HTTP/2 preface), turns offset jumps and
``lost_bytes`` into ``gap`` calls, and routes to ``Http1Parser`` or
``Http2Parser``. Parsers emit :data:`lumen_sniff.model.HttpEvent` records and
never raise on bad input: garbage becomes a ``Desync`` event.
"""

from __future__ import annotations

from typing import Protocol

from lumen_sniff.model import ConnKey, HttpEvent, ProcessInfo, Role

__all__ = ["ConnectionParser", "Http2Factory"]


class ConnectionParser(Protocol):
    """One connection's protocol state, both directions."""

    def data(self, role: Role, ts_ns: int, data: bytes) -> list[HttpEvent]:
        """Consume the next bytes sent by ``role``'s side."""

    def gap(self, role: Role, ts_ns: int, lost_bytes: int) -> list[HttpEvent]:
        """``lost_bytes`` of ``role``'s side were never captured."""

    def close(self, ts_ns: int) -> list[HttpEvent]:
        """The connection ended: end open messages as incomplete, emit ConnClosed."""


class Http2Factory(Protocol):
    """Makes the HTTP/2 parser of one connection."""

    def __call__(
        self,
        conn: ConnKey,
        process: ProcessInfo | None,
        peer: tuple[str, int] | None,
        *,
        mid_stream: bool,
    ) -> ConnectionParser: ...
