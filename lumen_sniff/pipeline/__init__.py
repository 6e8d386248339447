"""The pure pipeline: Chunks in, costed and attributed UsageEvents out.

::

    Chunk ─▶ ConnectionTracker ─HttpEvent─▶ ExchangeAssembler ─▶ UsageEvent
                   ▲                          (classify, extract,  IgnoreConnection
                   └──── ignore(conn) ◀────── price, attribute)

- ``settings``: :class:`PipelineSettings` (validated values);
- ``pipeline``: :class:`Pipeline`, the tracker and the assembler joined;
- ``assembler``: exchange assembly (HTTP events → finished exchanges);
- ``exchangestate``: the state of one exchange while it is assembled;
- ``events``: building the UsageEvent (price, attribution, id);
- ``routing``: where a request went, and whether its connection looks like LLM traffic.

No I/O and no clock: time comes from the Chunk timestamps, so the same Chunks
always give the same events (ids included). This package exports the stage's
two public names, :class:`Pipeline` and :class:`PipelineSettings`; everything
else is imported from its module.
"""

from __future__ import annotations

from lumen_sniff.pipeline.pipeline import Pipeline
from lumen_sniff.pipeline.settings import PipelineSettings

__all__ = ["Pipeline", "PipelineSettings"]
