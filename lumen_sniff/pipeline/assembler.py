"""Exchange assembly: HTTP events of many connections in, costed UsageEvents out.

Strategy
--------
State is kept per connection and, inside it, per exchange (``stream``: the
HTTP/2 stream id, or the HTTP/1.1 sequence number). An exchange moves through:

==============  ===========================  ===================================
state           event                        action
==============  ===========================  ===================================
(none)          RequestHead                  open; first of its connection →
                                             judge the connection (below)
REQUEST         BodyData(request)            count size; keep up to the cap
REQUEST         MessageEnd(request)          classify → None drops it (no output)
REQUEST/SENT    ResponseHead                 classify if not yet; new_extractor
RESPONSE        BodyData(response)           extractor.feed
RESPONSE        MessageEnd(response)         finish → UsageEvent
any             ConnClosed / close()         finish incomplete → UsageEvent
==============  ===========================  ===================================

Events for an exchange that is not open (dropped as non-LLM, or never seen
opening) are ignored. The first request of a connection decides whether the
connection is worth copying at all: a server-side view (unless counted), or a
host that is neither a known nor a configured LLM host with a path that does
not look like an LLM API, gives one :class:`IgnoreConnection`, after which the
connection's events are dropped. A ``not_http`` Desync does the same.

Memory is bounded: request bodies are kept up to ``request_body_cap_bytes``,
a connection holds at most ``max_open_exchanges`` exchanges, and at most
``max_connections`` connections are tracked (the oldest is finished first).
Time only comes from event timestamps; no clock is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lumen_sniff.model import (
    BodyData,
    ConnClosed,
    ConnKey,
    Desync,
    Headers,
    HttpEvent,
    IgnoreConnection,
    MessageEnd,
    PipelineOutput,
    RequestHead,
    ResponseHead,
    Role,
    Usage,
)
from lumen_sniff.pipeline.events import EventBuilder
from lumen_sniff.pipeline.exchangestate import ExchangeState
from lumen_sniff.pipeline.routing import HostRouter
from lumen_sniff.pipeline.settings import PipelineSettings
from lumen_sniff.pricing.prices import Pricer
from lumen_sniff.providers.attribution import KeyFingerprinter
from lumen_sniff.providers.base import Classification, Extraction, RequestInfo, UsageExtractor

__all__ = ["ClassifyFn", "ExchangeAssembler", "ExtractorFactory"]

ClassifyFn = Callable[[RequestInfo, Mapping[str, str]], Classification | None]
"""``providers.classify``: a request → its Classification, or None (not LLM)."""
ExtractorFactory = Callable[[Classification, RequestInfo, int, Headers], UsageExtractor]
"""``providers.new_extractor``: (classification, request, status, headers) → extractor."""

_NO_USAGE = Usage()
_RESPONSE = Role.RESPONSE


class ExchangeAssembler:
    """Turns the HTTP events of all connections into UsageEvents.

    Args:
        settings: Pipeline settings (hosts, tenants, salt, caps, switches).
        classify: ``providers.classify``.
        new_extractor: ``providers.new_extractor``.
        is_server_side: The tracker's judgement that the observed process
            received the requests on a connection.
        pricer: Shared pricer (a new one from the settings' overrides if None).
    """

    def __init__(
        self,
        settings: PipelineSettings,
        *,
        classify: ClassifyFn,
        new_extractor: ExtractorFactory,
        is_server_side: Callable[[ConnKey], bool] = lambda conn: False,
        pricer: Pricer | None = None,
    ) -> None:
        self._settings = settings
        self._classify = classify
        self._new_extractor = new_extractor
        self._is_server_side = is_server_side
        self._pricer = pricer if pricer is not None else Pricer(settings.model_prices())
        self._router = HostRouter(settings.hosts)
        self._conns: dict[ConnKey, dict[int, ExchangeState]] = {}
        # The connection of the last event and its exchanges; reset whenever a
        # connection leaves ``_conns``.
        self._hot_conn: ConnKey | None = None
        self._hot_exchanges: dict[int, ExchangeState] = {}
        self._ignored: dict[ConnKey, None] = {}
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "exchanges",
                "llm_exchanges",
                "events",
                "unpriced",
                "estimated",
                "incomplete",
                "desyncs",
                "ignored_connections",
                "request_body_truncated",
                "exchanges_dropped",
                "provider_errors",
            ),
            0,
        )
        """Counters by name; see :attr:`lumen_sniff.pipeline.pipeline.Pipeline.stats`."""
        self._events = EventBuilder(
            self._pricer,
            KeyFingerprinter(settings.key_salt),
            tuple(h.lower() for h in settings.tenant_headers),
            self.stats,
        )
        self._dispatch: dict[type[Any], Callable[[Any], list[PipelineOutput]]] = {
            RequestHead: self._on_request_head,
            ResponseHead: self._on_response_head,
            BodyData: self._on_body,
            MessageEnd: self._on_message_end,
            Desync: self._on_desync,
            ConnClosed: self._on_closed,
        }

    @property
    def pricer(self) -> Pricer:
        """The pricer in use."""
        return self._pricer

    @property
    def open_exchanges(self) -> int:
        """Exchanges being assembled, across all connections."""
        return sum(len(exchanges) for exchanges in self._conns.values())

    @property
    def buffered_bytes(self) -> int:
        """Request body bytes held by open exchanges (for classification and estimates)."""
        total = 0
        for exchanges in self._conns.values():
            for ex in exchanges.values():
                total += ex.body_kept if ex.request is None else len(ex.request.body)
        return total

    def handle(self, event: HttpEvent) -> list[PipelineOutput]:
        """Consume one HTTP event.

        Args:
            event: The next event from the connection tracker.

        Returns:
            Finished UsageEvents and IgnoreConnection requests, in order.
        """
        conn = event.conn
        if conn is self._hot_conn and type(event) is BodyData:
            # The hot path: more body on the connection of the previous event (the
            # parsers hand the same ConnKey object to every event of a connection).
            ex = self._hot_exchanges.get(event.stream)
            if ex is not None and event.role is _RESPONSE:
                extractor = ex.extractor
                if extractor is not None:
                    ex.last_ns = event.ts_ns
                    try:
                        extractor.feed(event.data)
                    except Exception:  # a provider bug must not stop the pipeline
                        self.stats["provider_errors"] += 1
                        ex.extractor = None
                return []
            return self._on_body(event)
        if self._ignored and conn in self._ignored:
            if type(event) is ConnClosed:
                del self._ignored[conn]
            return []
        out = self._dispatch[type(event)](event)
        exchanges = self._conns.get(conn)
        if exchanges is not None:
            self._hot_conn, self._hot_exchanges = conn, exchanges
        return out

    def close(self) -> list[PipelineOutput]:
        """Finish every open exchange as incomplete (end of capture).

        Returns:
            One UsageEvent per open LLM exchange.
        """
        out: list[PipelineOutput] = []
        for conn in list(self._conns):
            out.extend(self._finish_conn(conn, None, "closed"))
        return out

    # ------------------------------------------------------------- per event

    def _on_request_head(self, ev: RequestHead) -> list[PipelineOutput]:
        self.stats["exchanges"] += 1
        exchanges = self._conns.get(ev.conn)
        out: list[PipelineOutput] = []
        if exchanges is None:
            reason = self._judge(ev)
            if reason is not None:
                return [self._ignore(ev.conn, reason)]
            if len(self._conns) >= self._settings.max_connections:
                out.extend(self._finish_conn(next(iter(self._conns)), ev.ts_ns, "evicted"))
            exchanges = self._conns[ev.conn] = {}
        if ev.stream in exchanges:
            # A new request reuses a stream number: the old one ended unseen.
            out.extend(self._finish(exchanges.pop(ev.stream), ev.ts_ns, False, "replaced"))
        if len(exchanges) >= self._settings.max_open_exchanges:
            self.stats["exchanges_dropped"] += 1
            return out
        exchanges[ev.stream] = ExchangeState(ev)
        return out

    def _on_body(self, ev: BodyData) -> list[PipelineOutput]:
        ex = self._get(ev.conn, ev.stream)
        if ex is None:
            return []
        if ev.role is Role.REQUEST:
            size = len(ev.data)
            ex.body_size += size
            if ex.classified:
                return []  # classified early (the response came first): body no longer needed
            room = self._settings.request_body_cap_bytes - ex.body_kept
            if room > 0:
                piece = ev.data if size <= room else ev.data[:room]
                ex.body.append(piece)
                ex.body_kept += len(piece)
        elif ex.extractor is not None:
            ex.last_ns = ev.ts_ns
            try:
                ex.extractor.feed(ev.data)
            except Exception:  # a provider bug must not stop the pipeline
                self.stats["provider_errors"] += 1
                ex.extractor = None
        return []

    def _on_message_end(self, ev: MessageEnd) -> list[PipelineOutput]:
        ex = self._get(ev.conn, ev.stream)
        if ex is None:
            return []
        if ev.role is Role.REQUEST:
            self._classified(ex, ev.conn)  # classify now; a non-LLM exchange is dropped
            return []
        self._conns[ev.conn].pop(ev.stream, None)
        return self._finish(ex, ev.ts_ns, ev.complete, ev.reason)

    def _on_response_head(self, ev: ResponseHead) -> list[PipelineOutput]:
        ex = self._get(ev.conn, ev.stream)
        if ex is None or not self._classified(ex, ev.conn):
            return []
        assert ex.classification is not None and ex.request is not None
        ex.status = ev.status
        ex.response_ts = ev.ts_ns
        try:
            ex.extractor = self._new_extractor(ex.classification, ex.request, ev.status, ev.headers)
        except Exception:  # a provider bug must not stop the pipeline
            self.stats["provider_errors"] += 1
        return []

    def _on_desync(self, ev: Desync) -> list[PipelineOutput]:
        self.stats["desyncs"] += 1  # by reason in the tracker's "desync.<reason>"
        if ev.reason == "not_http":
            out = self._finish_conn(ev.conn, ev.ts_ns, "not_http")
            out.append(self._ignore(ev.conn, "not_http"))
            return out
        return []

    def _on_closed(self, ev: ConnClosed) -> list[PipelineOutput]:
        return self._finish_conn(ev.conn, ev.ts_ns, "closed")

    # --------------------------------------------------------------- helpers

    def _get(self, conn: ConnKey, stream: int) -> ExchangeState | None:
        exchanges = self._conns.get(conn)
        return None if exchanges is None else exchanges.get(stream)

    def _judge(self, head: RequestHead) -> str | None:
        """Why the connection of this first request should be ignored, if it should."""
        if not self._settings.count_server_side and self._is_server_side(head.conn):
            return "server_side"
        path = head.target.partition("?")[0]
        if not self._router.looks_like_llm(head.authority, path):
            return "not_llm"
        return None

    def _ignore(self, conn: ConnKey, reason: str) -> IgnoreConnection:
        self._conns.pop(conn, None)
        self._hot_conn = None
        if len(self._ignored) >= self._settings.max_connections:
            del self._ignored[next(iter(self._ignored))]
        self._ignored[conn] = None
        self.stats["ignored_connections"] += 1
        key = f"ignored.{reason}"
        self.stats[key] = self.stats.get(key, 0) + 1
        return IgnoreConnection(conn=conn, reason=reason)

    def _classified(self, ex: ExchangeState, conn: ConnKey) -> bool:
        """Classify once (with what body there is); False (and drop it) if not LLM."""
        if ex.classified:
            return ex.classification is not None
        ex.classified = True
        request = ex.request_info(self._router)
        if request.body_truncated:
            self.stats["request_body_truncated"] += 1
        try:
            ex.classification = self._classify(request, self._router.hosts)
        except Exception:  # a provider bug must not stop the pipeline
            self.stats["provider_errors"] += 1
            ex.classification = None
        ex.body = []
        if ex.classification is None:
            exchanges = self._conns.get(conn)
            if exchanges is not None and exchanges.get(ex.head.stream) is ex:
                del exchanges[ex.head.stream]
            return False
        ex.request = request
        self.stats["llm_exchanges"] += 1
        return True

    def _finish_conn(self, conn: ConnKey, ts_ns: int | None, reason: str) -> list[PipelineOutput]:
        exchanges = self._conns.pop(conn, None)
        self._hot_conn = None
        out: list[PipelineOutput] = []
        for ex in (exchanges or {}).values():
            out.extend(self._finish(ex, ex.last_ns if ts_ns is None else ts_ns, False, reason))
        return out

    def _finish(
        self, ex: ExchangeState, end_ns: int, complete: bool, reason: str
    ) -> list[PipelineOutput]:
        if not self._classified(ex, ex.head.conn):
            return []
        assert ex.classification is not None and ex.request is not None
        extraction = self._extraction(ex, complete)
        if extraction is None:
            extraction = Extraction(
                usage=_NO_USAGE,
                model=None,
                stream=ex.classification.stream,
                error_type=None,
                complete=False,
            )
        return [
            self._events.build(
                head=ex.head,
                cls=ex.classification,
                request=ex.request,
                status=ex.status,
                response_ts=ex.response_ts,
                extraction=extraction,
                end_ns=end_ns,
                transport_complete=complete,
                reason=reason,
            )
        ]

    def _extraction(self, ex: ExchangeState, complete: bool) -> Extraction | None:
        assert ex.classification is not None and ex.request is not None
        try:
            if ex.extractor is None and ex.response_ts is None:
                # No response at all: the provider may still estimate the input.
                ex.extractor = self._new_extractor(ex.classification, ex.request, 0, ())
                complete = False
            if ex.extractor is None:
                return None
            return ex.extractor.finish(complete=complete)
        except Exception:  # a provider bug must not stop the pipeline
            self.stats["provider_errors"] += 1
            return None
