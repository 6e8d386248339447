"""What a sink is: something that sends batches of committed events somewhere.

A sink's ``send`` may block (network) and may raise; the
:class:`~lumen_sniff.sinks.runner.SinkRunner` around it calls it from its own
thread, retries, and counts what it finally drops. So a sink is plain,
synchronous client code, and never sees the event loop or the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lumen_sniff.model import UsageEvent

__all__ = ["DROP_REASONS", "Sink", "SinkRejected"]

DROP_REASONS = ("queue_full", "export_failed", "rejected", "shutdown")
"""Why a record was not delivered (the ``reason`` of ``lumen_export_dropped_total``)."""


class SinkRejected(Exception):
    """The destination refused the batch for good (retrying cannot help)."""


class Sink(Protocol):
    """One destination."""

    name: str
    """Label of the sink in metrics and status ("otlp_logs", "redis"…)."""

    def send(self, events: Sequence[UsageEvent]) -> None:
        """Deliver ``events`` or raise (any exception: retried; SinkRejected: dropped)."""

    def close(self) -> None:
        """Release connections; called once, from the runner's thread or at shutdown."""
