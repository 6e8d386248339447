"""Incremental Server-Sent Events framer, to the WHATWG HTML "event stream" rules.

Strategy
--------
The spec describes a line parser over a decoded text stream. We keep the same
state (data buffer, event type buffer, last-event-id buffer, retry) but work on
bytes and whole lines, because the hot path must frame tens of MB/s:

* Line endings: CRLF, LF and CR all end a line. Each piece is normalised to LF
  with two C-speed ``replace`` calls. A CR at the very end of a piece has
  already ended its line, so a LF at the start of the next piece is dropped
  (``_skip_lf``): "\\r" | "\\n" is one line end, not two.
* A UTF-8 BOM is stripped only at the start of the stream, even when it
  arrives one byte at a time (``_head`` holds up to 2 bytes until it is known).
* Complete lines come from one ``split``; the unfinished tail waits in
  ``_partial``.
* Whole events first: at an event boundary with nothing pending (``_idle``),
  events made of one ``data:`` line, maybe after one ``event: `` line, are cut
  out with a few ``find`` calls each (``_whole_events``); the line loop takes
  over at the first anything else. An LLM stream read one event per read never
  reaches the loop. ``feed_records`` returns ``(event, data)`` pairs instead of
  :class:`SseEvent` records, for callers (the usage extractor) that need no
  more. Both paths give the same events however the stream is split.
* Fields: ``event``, ``data`` (joined with LF), ``id`` (ignored when it holds
  NUL; persists across events as the spec says), ``retry`` (ASCII digits only).
  A line starting with ``:`` is a comment. Unknown fields are ignored. A blank
  line dispatches the event if at least one ``data`` line was seen.
* ``data`` stays bytes (the UTF-8 the server sent): JSON parsers take bytes,
  and decoding every delta would waste time. ``event`` and ``id`` are decoded
  with replacement characters, as the spec's decoder would.
* Bounded memory: one event's data, or one line, may hold at most
  ``max_event_bytes``. Past that the event is marked ``oversize`` and its data
  dropped (counted in ``oversize_bytes``) instead of being buffered. (The cap
  on a line of another field only bites while the line is incomplete, so such
  a line over the cap that arrives whole is kept: a known split dependence.)
* End of stream: the spec discards an event that has no closing blank line.
  ``close()`` returns it anyway, flagged ``complete=False``, so a caller that
  wants to salvage a cut stream can, and a strict caller can ignore it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SseEvent", "SseParser"]

DEFAULT_MAX_EVENT_BYTES = 4 << 20
"""Default cap on one event's data (and on one line): 4 MiB."""

_BOM = b"\xef\xbb\xbf"
_EVENT_NAMES: dict[bytes, str] = {}
"""Decoded ``event: X`` lines; APIs use a handful of names (bounded)."""


def _event_name(line: bytes) -> str:
    """The name of an ``event: X`` line (with its one space), decoded once per name."""
    name = _EVENT_NAMES.get(line)
    if name is None:
        name = line[7:].decode("utf-8", "replace")
        if len(_EVENT_NAMES) < 256:
            _EVENT_NAMES[line] = name
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class SseEvent:
    """One dispatched event."""

    event: str
    """Event type; "message" when the stream named none."""
    data: bytes
    """The data lines joined with LF, as UTF-8 bytes; empty when oversize."""
    last_event_id: str = ""
    """The last event ID buffer at dispatch time."""
    oversize: bool = False
    """The data exceeded the cap and was dropped."""
    complete: bool = True
    """False for an event cut off by the end of the stream (no blank line)."""


class SseParser:
    """Frame a byte stream into :class:`SseEvent` records; never raises."""

    __slots__ = (
        "_data",
        "_event",
        "_head",
        "_id",
        "_idle",
        "_max",
        "_oversize",
        "_partial",
        "_size",
        "_skip_lf",
        "_skip_line",
        "_started",
        "oversize_bytes",
        "oversize_count",
        "retry_ms",
    )

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        """Create a parser.

        Args:
            max_event_bytes: Cap on one event's data and on one line.
        """
        self._max = max_event_bytes
        self._head = b""
        self._started = False
        self._idle = False  # started, at an event boundary, nothing pending: see _settle
        self._skip_lf = False
        self._skip_line = False
        self._partial = b""
        self._data: list[bytes] = []
        self._size = 0
        self._oversize = False
        self._event = ""
        self._id = ""
        self.retry_ms: int | None = None
        """Reconnection time the stream asked for, in milliseconds."""
        self.oversize_count = 0
        """Events whose data was dropped for exceeding the cap."""
        self.oversize_bytes = 0
        """Bytes dropped from oversize events and lines."""

    @property
    def last_event_id(self) -> str:
        """The last event ID buffer."""
        return self._id

    def feed(self, data: bytes) -> list[SseEvent]:
        """Consume the next bytes of the stream.

        Args:
            data: Any piece of the stream, of any length.

        Returns:
            The events completed by these bytes, in order.
        """
        out: list[SseEvent] = self._feed(data, False)
        self._settle()
        return out

    def feed_records(self, data: bytes) -> list[tuple[str, bytes]]:
        """Like :meth:`feed`, but each event is only its ``(event, data)`` pair.

        The usage extractor needs nothing else, and building an :class:`SseEvent`
        per delta is a large share of the cost of a stream. Oversize events
        give ``(event, b"")``, as ``feed`` gives them.

        Args:
            data: Any piece of the stream, of any length.

        Returns:
            The events completed by these bytes, in order.
        """
        out: list[tuple[str, bytes]]
        if self._idle and data.find(b"\r") < 0:
            # The hot case: whole events at an event boundary (a read per event).
            out = []
            pos = self._whole_events(data, out, True)
            if pos == len(data):
                return out  # still idle
            out += self._feed(data[pos:], True)
        else:
            out = self._feed(data, True)
        self._settle()
        return out

    def _settle(self) -> None:
        """Note whether the parser is at an event boundary with nothing pending."""
        self._idle = self._started and not (
            self._partial or self._data or self._skip_lf or self._oversize or self._skip_line
        )

    def _feed(self, data: bytes, pairs: bool) -> Any:
        if not self._started:
            data = self._head + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._head = data
                return []
            self._started = True
            self._head = b""
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:
                data = data[1:]
                if not data:
                    return []
        if data.find(b"\r") >= 0:
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[Any] = []
        if not (self._partial or self._data or self._oversize or self._skip_line):
            pos = self._whole_events(data, out, pairs)
            if pos:
                data = data[pos:]
        if data.find(b"\n") < 0:
            self._grow_partial(data)
            return out
        lines = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        self._partial = b""
        tail = lines.pop()
        if self._skip_line:
            self._skip_line = False
            self.oversize_bytes += len(lines[0])
            del lines[0]
        make = self._pair if pairs else self._make
        parts = self._data
        for line in lines:
            # Fast paths for the two lines every event has; the rest go to _line.
            if not line:
                if parts or self._oversize:
                    out.append(make(complete=True))
                    parts.clear()
                    self._size = 0
                    self._oversize = False
                self._event = ""
            elif line[:6] == b"data: " and not self._oversize:
                size = self._size + len(line) - 5
                if size > self._max:
                    self._line(line, out, make)
                else:
                    self._size = size
                    parts.append(line[6:])
            elif line[:7] == b"event: ":
                self._event = _event_name(line)
            else:
                self._line(line, out, make)
        self._grow_partial(tail)
        return out

    def _whole_events(self, data: bytes, out: list[Any], pairs: bool) -> int:
        """Take the plain events at the start of ``data``; return where they end.

        Called at an event boundary (nothing pending, no CR in ``data``). An
        event here is one ``data:`` line, maybe after one ``event: `` line, then
        a blank line: what every LLM API sends. Each costs a couple of ``find``
        calls instead of a split and a trip round the line loop. Anything else
        is left to the line loop.
        """
        find, startswith = data.find, data.startswith
        pos, n, limit, event = 0, len(data), self._max, self._event
        while pos < n:
            nl = find(b"\n", pos)
            if nl < 0 or nl + 1 >= n:
                break
            start = pos
            if data[pos] == 0x65 and startswith(b"event: ", pos):  # 'e'
                line = data[pos:nl]
                event = _EVENT_NAMES.get(line) or _event_name(line)
                start = nl + 1
                nl = find(b"\n", start)
                if nl < 0 or nl + 1 >= n:
                    break
            if data[nl + 1] != 0x0A or not startswith(b"data:", start) or nl - start > limit:
                break
            value = start + 5
            if value < nl and data[value] == 0x20:
                value += 1
            if pairs:
                out.append((event or "message", data[value:nl]))
            else:
                out.append(
                    SseEvent(event=event or "message", data=data[value:nl], last_event_id=self._id)
                )
            event = ""
            pos = nl + 2
        if pos:
            self._event = ""
        return pos

    def close(self) -> list[SseEvent]:
        """End of stream: return the unterminated event, if any, as incomplete.

        Returns:
            At most one event with ``complete=False``; the spec would discard it.
        """
        out: list[SseEvent] = []
        if not self._started and self._head:
            # A stream shorter than a BOM that only looked like its start.
            self._started = True
            head, self._head = self._head, b""
            out.extend(self.feed(head))
        if self._partial and not self._skip_line:
            self._line(self._partial, out, self._make)
        self._partial = b""
        self._skip_line = False
        if self._data or self._oversize:
            out.append(self._make(complete=False))
        self._reset_event()
        self._settle()
        return out

    # ------------------------------------------------------------------ helpers

    def _grow_partial(self, piece: bytes) -> None:
        if self._skip_line:
            self.oversize_bytes += len(piece)
            return
        if not piece:
            return
        self._partial = self._partial + piece if self._partial else piece
        if len(self._partial) > self._max:
            # A single line longer than the cap: drop it (and so its event's data).
            self.oversize_bytes += len(self._partial)
            self._partial = b""
            self._skip_line = True
            self._oversize = True
            self._data.clear()

    def _line(self, line: bytes, out: list[Any], make: Callable[..., Any]) -> None:
        if not line:
            if self._data or self._oversize:
                out.append(make(complete=True))
            self._reset_event()
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._oversize:
                self.oversize_bytes += len(value)
                return
            self._size += len(value) + 1
            if self._size > self._max:
                self.oversize_bytes += self._size
                self._oversize = True
                self._data.clear()
                return
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self.retry_ms = int(value)

    def _make(self, *, complete: bool) -> SseEvent:
        if self._oversize:
            self.oversize_count += 1
            data = b""
        elif len(self._data) == 1:
            data = self._data[0]
        else:
            data = b"\n".join(self._data)
        return SseEvent(
            event=self._event or "message",
            data=data,
            last_event_id=self._id,
            oversize=self._oversize,
            complete=complete,
        )

    def _pair(self, *, complete: bool) -> tuple[str, bytes]:
        event = self._make(complete=complete)
        return (event.event, event.data)

    def _reset_event(self) -> None:
        self._data.clear()
        self._size = 0
        self._oversize = False
        self._event = ""
