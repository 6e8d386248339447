"""The usage extractor: frame a response body, feed an API reader, build the Extraction.

Strategy
--------
The framing is chosen when the first non-blank byte of the body arrives, from
the Content-Type *and* that byte, because servers mislabel bodies:

==================================  ==================  ==========================
Content-Type                        first byte          framing
==================================  ==================  ==========================
text/event-stream                   ``{`` or ``[``      JSON (Gemini errors on streams)
text/event-stream                   other               SSE
application/vnd.amazon.eventstream  any                 AWS eventstream
application/x-ndjson                any                 NDJSON
anything (stream, row: JSON_ARRAY)  ``[``               incremental JSON array
anything                            ``data:``/``event:``  SSE (a mislabelled stream)
anything (stream, row: NDJSON)      ``{``               NDJSON
anything (stream, row: EVENTSTREAM) not ``{``           AWS eventstream
anything else                       any                 JSON document
==================================  ==================  ==========================

"row" is the framing the endpoint's row declares for streams
(:class:`~lumen_sniff.providers.family.Framing`); no provider is named here.
Responses with status ≥ 400 are always read as a JSON error document (SSE is
still recognised), typed by the family's error shape, and give no usage. A
JSON document is buffered up to ``_JSON_CAP``; past that only its head and
tail are kept and the reader salvages ``usage`` from them. At ``finish`` the
reader's tally becomes the Extraction: reported usage when the final usage was
read, else an estimate
(:mod:`lumen_sniff.providers.estimate`) marked ``estimated``.
"""

from __future__ import annotations

import enum

from lumen_sniff.model import Headers, Usage, UsageSource
from lumen_sniff.protocol.eventstream import EventMessage, EventStreamParser
from lumen_sniff.protocol.jsonarray import JsonArraySplitter
from lumen_sniff.protocol.ndjson import NdjsonParser
from lumen_sniff.protocol.sse import SseParser
from lumen_sniff.providers._json import INVALID, parse
from lumen_sniff.providers.base import Classification, Extraction, RequestInfo
from lumen_sniff.providers.error_shapes import status_error_type
from lumen_sniff.providers.estimate import estimate_input_tokens, estimate_output_tokens
from lumen_sniff.providers.family import ErrorShape, Framing
from lumen_sniff.providers.reader import Reader

__all__ = ["BodyExtractor", "usage_flags"]

_JSON_CAP = 8 << 20
_HEAD_KEEP = 64 << 10
_TAIL_KEEP = 256 << 10
_SNIFF_CAP = 64 << 10
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


class _Mode(enum.Enum):
    UNDECIDED = 0
    SSE = 1
    NDJSON = 2
    ARRAY = 3
    JSON = 4
    EVENTSTREAM = 5


class BodyExtractor:
    """Implements ``UsageExtractor`` for every API family; never raises."""

    __slots__ = (
        "_array",
        "_buf",
        "_classification",
        "_ctype",
        "_done",
        "_error",
        "_error_shape",
        "_events",
        "_framing",
        "_headers",
        "_mode",
        "_ndjson",
        "_no_output",
        "_over",
        "_reader",
        "_record",
        "_request",
        "_result",
        "_sse",
        "_status",
        "_tail",
        "broken",
    )

    def __init__(
        self,
        reader: Reader,
        classification: Classification,
        request: RequestInfo,
        status: int,
        headers: Headers,
        *,
        framing: Framing = Framing.SSE,
        no_output: bool = False,
        error_shape: ErrorShape | None = None,
    ) -> None:
        """Prepare to read one response.

        Args:
            reader: The API family's reader.
            classification: What the request was recognised as.
            request: The request (used only to estimate input tokens).
            status: HTTP status of the response.
            headers: Response header fields.
            framing: The endpoint row's framing for streams.
            no_output: The endpoint bills no output (an estimate stays at 0).
            error_shape: The family's error shape (error documents → type).
        """
        self._reader = reader
        self._framing = framing
        self._no_output = no_output
        self._error_shape = error_shape
        self._headers = headers
        self._events: EventStreamParser | None = None
        self._record = reader.record
        self._classification = classification
        self._request = request
        self._status = status
        self._error = status >= 400
        self._ctype = ""
        for name, value in headers:
            if name == "content-type":
                self._ctype = value.lower()
                break
        self._mode = _Mode.UNDECIDED
        self._buf = bytearray()
        self._tail = bytearray()
        self._over = False
        self._sse: SseParser | None = None
        self._ndjson: NdjsonParser | None = None
        self._array: JsonArraySplitter | None = None
        self._done = False
        self._result: Extraction | None = None
        self.broken = 0
        """Internal failures swallowed to keep the never-raise promise."""
        try:
            reader.head(status, headers)
        except Exception:  # the contract: an extractor never raises
            self.broken += 1

    # --------------------------------------------------------------- public API

    def feed(self, data: bytes) -> None:
        """Consume the next piece of decoded response body."""
        if self._done or not data:
            return
        try:
            sse = self._sse
            if sse is not None:  # the hot path: a stream, framed without SseEvent records
                record = self._record
                for event, payload in sse.feed_records(data):
                    record(event, payload)
            else:
                self._feed(data)
        except Exception:  # the contract: an extractor never raises
            self.broken += 1

    def finish(self, *, complete: bool) -> Extraction:
        """End of the response body; ``complete`` is False when it was cut off."""
        if self._result is not None:
            return self._result
        self._done = True
        try:
            self._flush()
        except Exception:  # the contract: an extractor never raises
            self.broken += 1
        try:
            self._result = self._build(complete)
        except Exception:  # the contract: an extractor never raises
            self.broken += 1
            self._result = Extraction(
                usage=Usage(source=UsageSource.NONE),
                model=None,
                stream=False,
                error_type=None,
                complete=False,
            )
        return self._result

    # ----------------------------------------------------------------- framing

    def _feed(self, data: bytes) -> None:
        mode = self._mode
        if mode is _Mode.SSE:
            assert self._sse is not None
            for event, payload in self._sse.feed_records(data):
                self._reader.record(event, payload)
        elif mode is _Mode.NDJSON:
            assert self._ndjson is not None
            for line in self._ndjson.feed(data):
                self._reader.record("", line)
        elif mode is _Mode.ARRAY:
            assert self._array is not None
            for element in self._array.feed(data):
                self._reader.record("", element)
        elif mode is _Mode.EVENTSTREAM:
            assert self._events is not None
            for message in self._events.feed(data):
                self._event_message(message)
        elif mode is _Mode.JSON:
            self._keep(data)
        else:
            self._buf += data
            head = bytes(self._buf).lstrip(_BLANK)
            if head.startswith(_BOM):
                head = head[len(_BOM) :].lstrip(_BLANK)
            if len(head) < 6 and len(self._buf) < _SNIFF_CAP:
                return  # not enough to tell "data:" from "{"
            pending = bytes(self._buf)
            self._buf.clear()
            self._decide(head)
            self._feed(pending)

    def _decide(self, head: bytes) -> None:
        c = head[:1]
        stream = self._classification.stream
        framing = self._framing
        ctype = self._ctype
        sse_like = head.startswith((b"data:", b"event:", b"id:", b"retry:", b":"))
        if self._error:
            self._mode = _Mode.SSE if sse_like else _Mode.JSON
        elif "event-stream" in ctype:
            self._mode = _Mode.JSON if c in (b"{", b"[") else _Mode.SSE
        elif "amazon.eventstream" in ctype:
            self._mode = _Mode.EVENTSTREAM
        elif "ndjson" in ctype or "jsonl" in ctype:
            self._mode = _Mode.NDJSON
        elif c == b"[" and framing is Framing.JSON_ARRAY and stream:
            self._mode = _Mode.ARRAY
        elif sse_like:
            self._mode = _Mode.SSE
        elif c == b"{" and framing is Framing.NDJSON and stream:
            self._mode = _Mode.NDJSON
        elif c not in (b"{", b"[") and framing is Framing.EVENTSTREAM and stream:
            self._mode = _Mode.EVENTSTREAM
        else:
            self._mode = _Mode.JSON
        if self._mode is _Mode.SSE:
            self._sse = SseParser()
        elif self._mode is _Mode.NDJSON:
            self._ndjson = NdjsonParser()
        elif self._mode is _Mode.ARRAY:
            self._array = JsonArraySplitter()
        elif self._mode is _Mode.EVENTSTREAM:
            self._events = EventStreamParser()

    def _event_message(self, message: EventMessage) -> None:
        """One eventstream message → a reader record named by its event type.

        Exceptions (``:message-type: exception``) reach the reader as events
        named ``exception:<type>``.
        """
        headers = message.headers
        if headers.get(":message-type", "event") == "exception":
            name = "exception:" + headers.get(":exception-type", "")
        else:
            name = headers.get(":event-type", "")
        self._reader.record(name, message.payload)

    def _keep(self, data: bytes) -> None:
        if not self._over:
            self._buf += data
            if len(self._buf) <= _JSON_CAP:
                return
            self._over = True
            self._tail += self._buf[_HEAD_KEEP:]
            del self._buf[_HEAD_KEEP:]
        else:
            self._tail += data
        if len(self._tail) > 2 * _TAIL_KEEP:
            del self._tail[:-_TAIL_KEEP]

    def _flush(self) -> None:
        reader = self._reader
        if self._mode is _Mode.UNDECIDED and self._buf:
            head = bytes(self._buf).lstrip(_BLANK)
            pending = bytes(self._buf)
            self._buf.clear()
            if head:
                self._decide(head)
                self._feed(pending)
        if self._sse is not None:
            for ev in self._sse.close():
                reader.record(ev.event, ev.data)
        elif self._ndjson is not None:
            for line in self._ndjson.close():
                reader.record("", line)
        elif self._array is not None:
            for element in self._array.close():
                reader.record("", element)
            if self._array.ended and not reader.t.failed:
                reader.t.ended = True
        elif self._events is not None:
            self._events.close()
        elif self._mode is _Mode.JSON:
            self._read_document()

    def _read_document(self) -> None:
        reader = self._reader
        if self._over:
            reader.salvage(bytes(self._buf), bytes(self._tail[-_TAIL_KEEP:]))
            return
        body = bytes(self._buf)
        doc = parse(body)
        if self._error and self._error_shape is not None:
            # An error document: the family's error shape types it; it bills nothing.
            reader.t.error_type = self._error_shape(None if doc is INVALID else doc, self._headers)
            return
        if doc is not INVALID:
            reader.document(doc)
            return
        # Several JSON documents, one per line (an unlabelled NDJSON stream)?
        docs = [parse(line) for line in body.splitlines() if line.strip(_BLANK)]
        if len(docs) > 1 and all(d is not INVALID for d in docs):
            for d in docs:
                reader.document(d)
            return
        reader.t.bad_json += 1
        reader.salvage(body[:_HEAD_KEEP], body[-_TAIL_KEEP:])

    # ------------------------------------------------------------------ result

    def _build(self, complete: bool) -> Extraction:
        t = self._reader.t
        stream = self._mode in (_Mode.SSE, _Mode.NDJSON, _Mode.ARRAY, _Mode.EVENTSTREAM)
        failed_quietly = t.error_type is not None and not t.reported and t.deltas == 0
        if self._status >= 300 or failed_quietly:
            error_type = t.error_type
            if self._error and error_type in (None, "error"):
                error_type = status_error_type(self._status)
            return Extraction(
                usage=Usage(source=UsageSource.NONE),
                model=t.model,
                stream=stream,
                error_type=error_type,
                complete=complete and not t.failed,
            )
        ended = t.ended or (complete and not self._reader.has_terminator and t.records > 0)
        if t.reported and (t.final or (ended and complete)):
            source = UsageSource.REPORTED
            output = t.output
        elif t.reported:
            source = UsageSource.ESTIMATED
            output = max(t.output, estimate_output_tokens(deltas=t.deltas, chars=t.out_chars))
        else:
            source = UsageSource.ESTIMATED
            t.input = estimate_input_tokens(self._request)
            output = estimate_output_tokens(deltas=t.deltas, chars=t.out_chars)
            if self._no_output:
                output = 0
        usage = Usage(
            input_tokens=t.input,
            output_tokens=output,
            cache_read_tokens=t.cache_read,
            cache_write_tokens=t.cache_write,
            reasoning_tokens=t.reasoning,
            source=source,
            provider_cost_usd=t.cost_usd,
            flags=usage_flags(t.input, output, t.cache_read, t.cache_write, t.reasoning),
        )
        return Extraction(
            usage=usage,
            model=t.model,
            stream=stream,
            error_type=t.error_type,
            complete=complete and ended and not t.failed,
        )


def usage_flags(
    input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, reasoning: int
) -> tuple[str, ...]:
    """The self-contradictions of a usage (``model.USAGE_FLAGS``), sorted; () when none.

    The counts stay as reported: a provider that says reasoning exceeds output
    is recorded saying so, and the flag lets a reader find such events.
    """
    flags: tuple[str, ...] = ()
    if cache_read + cache_write > input_tokens:
        flags += ("cache_exceeds_input",)
    if reasoning > output_tokens:
        flags += ("reasoning_exceeds_output",)
    return flags
