"""The sink table: one row per destination, and the builder that loops over it.

Adding a destination is one module with a ``make(settings) -> Sink`` function
and one row here. A row's module is imported only when its sink is enabled,
so the OpenTelemetry SDK and the Redis client cost nothing when export is off.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lumen_sniff.sinks.runner import SinkRunner
from lumen_sniff.sinks.settings import QueueSettings

__all__ = ["SINKS", "SinkRow", "build_sinks"]

log = logging.getLogger("lumen_sniff.sinks")


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkRow:
    """One destination."""

    name: str
    """Sink name (metrics label ``sink``)."""
    settings: Callable[[Any], Any]
    """Settings → this sink's own settings object."""
    enabled: Callable[[Any], bool]
    """Whether the sink's own settings turn it on."""
    queue: Callable[[Any], QueueSettings]
    """Its queue settings."""
    factory: str
    """``module:function`` that builds the Sink from its own settings."""


SINKS: tuple[SinkRow, ...] = (
    SinkRow(
        name="otlp_metrics",
        settings=lambda s: s.otlp,
        enabled=lambda o: o.enabled and o.metrics,
        # Recording into the SDK's aggregation never fails; a short wait batches well.
        queue=lambda o: QueueSettings(queue_size=o.queue.queue_size, batch_wait_s=0.2),
        factory="lumen_sniff.sinks.otlp:make_metrics",
    ),
    SinkRow(
        name="otlp_logs",
        settings=lambda s: s.otlp,
        enabled=lambda o: o.enabled and o.logs,
        queue=lambda o: o.queue,
        factory="lumen_sniff.sinks.otlp:make_logs",
    ),
    SinkRow(
        name="redis",
        settings=lambda s: s.redis,
        enabled=lambda r: r.enabled,
        queue=lambda r: r.queue,
        factory="lumen_sniff.sinks.redisstream:make",
    ),
)
"""Every destination lumen-sniff can export committed events to."""


def build_sinks(
    settings: Any, rows: tuple[SinkRow, ...] = SINKS
) -> tuple[list[SinkRunner], dict[str, str]]:
    """Build (not start) a runner for every enabled sink.

    Fails open: a sink that cannot be built (library missing, bad endpoint) is
    reported in the second value and the daemon runs without it.

    Returns:
        The runners, and ``{sink name: why it is unavailable}``.
    """
    runners: list[SinkRunner] = []
    errors: dict[str, str] = {}
    for row in rows:
        own = row.settings(settings)
        if not row.enabled(own):
            continue
        module_name, _, function = row.factory.partition(":")
        try:
            make = getattr(importlib.import_module(module_name), function)
            runners.append(SinkRunner(make(own), row.queue(own)))
        except Exception as exc:  # fail open: export is never worth stopping capture
            errors[row.name] = f"{type(exc).__name__}: {exc}"
            log.error("export sink %s unavailable: %s", row.name, errors[row.name])
    return runners, errors
