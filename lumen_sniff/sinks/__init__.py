"""Export sinks: committed events to OpenTelemetry collectors and Redis Streams.

::

    store writer ──commit──▶ SinkRunner (bounded queue, batches, retries) ──▶ Sink.send
                             one per row of SINKS, each on its own thread

See :mod:`lumen_sniff.sinks.runner` for the delivery guarantees and
:mod:`lumen_sniff.sinks.table` for the rows.
"""

from __future__ import annotations

from lumen_sniff.sinks.base import DROP_REASONS, Sink, SinkRejected
from lumen_sniff.sinks.runner import SinkRunner
from lumen_sniff.sinks.settings import OtlpSettings, QueueSettings, RedisSettings
from lumen_sniff.sinks.table import SINKS, SinkRow, build_sinks

__all__ = [
    "DROP_REASONS",
    "SINKS",
    "OtlpSettings",
    "QueueSettings",
    "RedisSettings",
    "Sink",
    "SinkRejected",
    "SinkRow",
    "SinkRunner",
    "build_sinks",
]
