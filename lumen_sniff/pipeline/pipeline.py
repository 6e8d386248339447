"""The pipeline: a connection tracker and an exchange assembler, Chunks in, events out.

::

    Chunk ─▶ ConnectionTracker ─HttpEvent─▶ ExchangeAssembler ─▶ UsageEvent
                   ▲                          (classify, extract,  IgnoreConnection
                   └──── ignore(conn) ◀────── price, attribute)

No I/O and no clock: time comes from the Chunk timestamps, so the same Chunks
always give the same events (ids included). An :class:`IgnoreConnection` is
both returned (the capture backend can stop copying the connection in the
kernel) and applied to the tracker at once.
"""

from __future__ import annotations

from typing import Protocol

from lumen_sniff.model import Chunk, ConnKey, HttpEvent, IgnoreConnection, PipelineOutput
from lumen_sniff.pipeline.assembler import ClassifyFn, ExchangeAssembler, ExtractorFactory
from lumen_sniff.pipeline.settings import PipelineSettings

__all__ = ["Pipeline"]

class _Tracker(Protocol):
    @property
    def stats(self) -> dict[str, int]: ...

    def feed(self, chunk: Chunk) -> list[HttpEvent]: ...

    def close(self) -> list[HttpEvent]: ...

    def ignore(self, conn: ConnKey) -> None: ...

    def is_server_side(self, conn: ConnKey) -> bool: ...


class Pipeline:
    """Chunks of any number of connections → UsageEvents and IgnoreConnections.

    Args:
        settings: Pipeline settings.
        tracker: Connection tracker to use (tests); a new
            ``ConnectionTracker(max_connections=…)`` when None.
        classify: ``providers.classify`` unless given (tests).
        new_extractor: ``providers.new_extractor`` unless given (tests).
    """

    def __init__(
        self,
        settings: PipelineSettings,
        *,
        tracker: _Tracker | None = None,
        classify: ClassifyFn | None = None,
        new_extractor: ExtractorFactory | None = None,
    ) -> None:
        if tracker is None:
            from lumen_sniff.protocol.tracker import ConnectionTracker

            tracker = ConnectionTracker(max_connections=settings.max_connections)
        if classify is None or new_extractor is None:
            from lumen_sniff import providers

            classify = classify or providers.classify
            new_extractor = new_extractor or providers.new_extractor
        self.settings = settings
        self._tracker = tracker
        self._assembler = ExchangeAssembler(
            settings,
            classify=classify,
            new_extractor=new_extractor,
            is_server_side=tracker.is_server_side,
        )
        # Bound once: feed() runs for every Chunk.
        self._track = tracker.feed
        self._assemble = self._assembler.handle

    def feed(self, chunk: Chunk) -> list[PipelineOutput]:
        """Process one Chunk.

        Args:
            chunk: Bytes of one direction of one connection.

        Returns:
            Finished UsageEvents and IgnoreConnection requests, in order.
        """
        events = self._track(chunk)
        if not events:
            return []
        if len(events) == 1:  # most chunks: one BodyData
            produced = self._assemble(events[0])
            if produced:
                self._apply(produced)
            return produced
        return self._handle(events)

    def close(self) -> list[PipelineOutput]:
        """End of capture: every open exchange ends as an incomplete event.

        Returns:
            The last UsageEvents.
        """
        out = self._handle(self._tracker.close())
        out.extend(self._assembler.close())
        return out

    @property
    def stats(self) -> dict[str, int]:
        """Counters: the tracker's (bytes, gaps, ``desync.<reason>``…) plus
        ``exchanges`` (requests seen), ``llm_exchanges``, ``events``,
        ``unpriced``, ``estimated``, ``incomplete``, ``desyncs``,
        ``ignored_connections`` (and ``ignored.<reason>``),
        ``request_body_truncated``, ``exchanges_dropped``, ``provider_errors``
        and ``price_errors``."""
        merged = dict(self._tracker.stats)
        merged.update(self._assembler.stats)
        merged.update(self._assembler.pricer.stats)
        return merged

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in memory: the tracker's buffers plus kept request bodies."""
        held = getattr(self._tracker, "buffered_bytes", 0)
        return int(held) + self._assembler.buffered_bytes

    @property
    def open_exchanges(self) -> int:
        """Exchanges being assembled."""
        return self._assembler.open_exchanges

    def _handle(self, events: list[HttpEvent]) -> list[PipelineOutput]:
        handle = self._assembler.handle
        out: list[PipelineOutput] = []
        for event in events:
            produced = handle(event)
            if produced:
                self._apply(produced)
                out.extend(produced)
        return out

    def _apply(self, produced: list[PipelineOutput]) -> None:
        """Stop tracking the connections the assembler judged not worth copying."""
        for item in produced:
            if type(item) is IgnoreConnection:
                self._tracker.ignore(item.conn)
