"""Validated settings of the export sinks (``[otlp]``, ``[redis]``): values only.

Built by :mod:`lumen_sniff.config`; nothing here opens a socket or imports a
client library. Every sink is off unless its table says ``enabled = true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["OTLP_PROTOCOLS", "OtlpSettings", "QueueSettings", "RedisSettings"]

OTLP_PROTOCOLS = ("http/protobuf", "grpc")


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueSettings:
    """How a sink buffers, batches and retries (see :mod:`lumen_sniff.sinks.runner`)."""

    queue_size: int = 10_000
    """Records that may wait; more are dropped and counted (``queue_full``)."""
    batch_max: int = 512
    """Most records per send."""
    batch_wait_s: float = 1.0
    """Longest wait for a batch to fill after its first record."""
    retry_pauses_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """Pause before each retry of a failed send; after the last, the batch is dropped."""
    close_timeout_s: float = 5.0
    """At shutdown, longest wait for queued records to go out; the rest is counted."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OtlpSettings:
    """OpenTelemetry export: GenAI metrics and one log record per call."""

    enabled: bool = False
    """Off by default."""
    endpoint: str = "http://127.0.0.1:4318"
    """Collector base URL (http/protobuf: /v1/metrics and /v1/logs are appended;
    grpc: host:port or a URL)."""
    protocol: str = "http/protobuf"
    """"http/protobuf" or "grpc"."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers (authentication)."""
    resource: Mapping[str, str] = field(default_factory=dict)
    """Resource attributes (host.name, service.namespace, deployment.environment…);
    host.name defaults to this host's name, service.name to "lumen-sniff"."""
    timeout_s: float = 5.0
    """Per-export timeout."""
    metrics_interval_s: float = 60.0
    """How often cumulative metrics are pushed."""
    logs: bool = True
    """Send one log record per call."""
    metrics: bool = True
    """Send the metrics."""
    queue: QueueSettings = field(default_factory=QueueSettings)
    """Buffering of the log records."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RedisSettings:
    """Redis Streams: one XADD per call."""

    enabled: bool = False
    """Off by default."""
    url: str = "redis://127.0.0.1:6379/0"
    """redis://, rediss:// or unix:// URL."""
    key: str = "lumen:events:{tenant}"
    """Stream key template; ``{tenant}`` (``unknown`` when none), ``{provider}``."""
    maxlen: int = 100_000
    """Approximate stream length cap (``XADD … MAXLEN ~``)."""
    timeout_s: float = 5.0
    """Socket and connect timeout."""
    queue: QueueSettings = field(default_factory=QueueSettings)
    """Buffering of the records."""
