"""Helpers over parser output shared by the HTTP/1 and tracker tests."""

from __future__ import annotations

from lumen_sniff.model import BodyData, HttpEvent

__all__ = ["merge"]


def merge(events: list[HttpEvent]) -> list[HttpEvent]:
    """Join consecutive BodyData of one message (splitting may cut a body anywhere)."""
    out: list[HttpEvent] = []
    for e in events:
        prev = out[-1] if out else None
        if (
            isinstance(e, BodyData)
            and isinstance(prev, BodyData)
            and (prev.stream, prev.role) == (e.stream, e.role)
        ):
            out[-1] = BodyData(
                conn=e.conn, stream=e.stream, role=e.role, ts_ns=prev.ts_ns, data=prev.data + e.data
            )
        else:
            out.append(e)
    return out
