"""OTLP export through the official OpenTelemetry SDK and exporters.

Imported only when ``[otlp] enabled = true`` (the sink table imports it
lazily), so the SDK, protobuf and grpc cost nothing otherwise.

Two sinks share one ``[otlp]`` table:

* ``otlp_metrics``: records each call into SDK instruments (in-memory
  aggregation, never fails); the SDK's periodic reader pushes cumulative
  metrics every ``metrics_interval_s``. A failed push loses nothing: the next
  push carries the cumulative totals. Failed pushes are counted
  (``export_failures`` in /api/status).
* ``otlp_logs``: one log record per call, exported in batches by the
  :class:`~lumen_sniff.sinks.runner.SinkRunner` (bounded queue, retries,
  counted drops).

Names and units: see :mod:`lumen_sniff.sinks.genai`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from lumen_sniff import __version__
from lumen_sniff.labels import FLEET_LABELS, Bounded, fleet_values
from lumen_sniff.model import UsageEvent
from lumen_sniff.sinks.genai import (
    DURATION_BUCKETS_S,
    TOKEN_BUCKETS,
    error_type,
    log_attributes,
    metric_attributes,
    subset_points,
    token_points,
)
from lumen_sniff.sinks.settings import OtlpSettings

__all__ = ["OtlpLogsSink", "OtlpMetricsSink", "make_logs", "make_metrics", "resource_of"]

log = logging.getLogger("lumen_sniff.sinks")

_SCOPE = "lumen_sniff"

_QUIET_LOGGERS = ("opentelemetry.exporter.otlp", "opentelemetry.sdk.metrics._internal.export")
"""The SDK logs every failed attempt (with a traceback for metrics); the sinks count
failures in /api/status and /metrics and log once per outage instead."""


def _quiet_sdk() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def resource_of(settings: OtlpSettings) -> Resource:
    """The resource: the configured attributes over host.name and service.name defaults."""
    attrs: dict[str, str] = {
        "service.name": "lumen-sniff",
        "service.version": __version__,
        "host.name": socket.gethostname(),
    }
    attrs.update(settings.resource)
    return Resource.create(attrs)


def _http_url(settings: OtlpSettings, signal: str) -> str:
    return settings.endpoint.rstrip("/") + f"/v1/{signal}"


def _grpc_target(settings: OtlpSettings) -> tuple[str, bool]:
    endpoint = settings.endpoint
    insecure = not endpoint.startswith("https://")
    return endpoint.removeprefix("http://").removeprefix("https://"), insecure


def _metric_exporter(settings: OtlpSettings) -> MetricExporter:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        target, insecure = _grpc_target(settings)
        return GrpcMetricExporter(
            endpoint=target,
            insecure=insecure,
            headers=dict(settings.headers),
            timeout=settings.timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(
        endpoint=_http_url(settings, "metrics"),
        headers=dict(settings.headers),
        timeout=settings.timeout_s,
    )


def _log_exporter(settings: OtlpSettings) -> Any:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter as GrpcLogExporter,
        )

        target, insecure = _grpc_target(settings)
        return GrpcLogExporter(
            endpoint=target,
            insecure=insecure,
            headers=dict(settings.headers),
            timeout=settings.timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(
        endpoint=_http_url(settings, "logs"),
        headers=dict(settings.headers),
        timeout=settings.timeout_s,
    )


class _CountingExporter(MetricExporter):
    """Delegates to the real exporter and counts failed pushes."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self.pushes = 0
        self.failures = 0

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.pushes += 1
        if result is not MetricExportResult.SUCCESS:
            self.failures += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class OtlpMetricsSink:
    """Records calls into the GenAI instruments; the SDK pushes them periodically."""

    name = "otlp_metrics"

    def __init__(self, settings: OtlpSettings, *, max_label_values: int = 50) -> None:
        _quiet_sdk()
        self._exporter = _CountingExporter(_metric_exporter(settings))
        reader = PeriodicExportingMetricReader(
            self._exporter,
            export_interval_millis=settings.metrics_interval_s * 1000,
            export_timeout_millis=settings.timeout_s * 1000,
        )
        self._provider = MeterProvider(
            resource=resource_of(settings), metric_readers=[reader], shutdown_on_exit=False
        )
        meter = self._provider.get_meter(_SCOPE, __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used (billable, reported).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._cost = meter.create_counter(
            "lumen.cost.usd", unit="{USD}", description="Priced cost (lumen-sniff's own name)."
        )
        self._unpriced = meter.create_counter(
            "lumen.unpriced.calls", unit="{call}", description="Calls with no known price."
        )
        self._subsets = meter.create_counter(
            "lumen.token.usage.subset",
            unit="{token}",
            description="Cache read/write and reasoning tokens (subsets of input/output).",
        )
        self._bounds = tuple(Bounded(max_label_values) for _ in FLEET_LABELS)
        self._model = Bounded(max_label_values)

    def send(self, events: Sequence[UsageEvent]) -> None:
        """Record each call (aggregation only; the push happens on the SDK's thread)."""
        for event in events:
            attrs = self._attributes(event)
            for count, kind in token_points(event):
                self._tokens.record(count, {**attrs, "gen_ai.token.type": kind})
            if event.duration_ms is not None:
                failure = error_type(event)
                extra = {"error.type": failure} if failure else {}
                self._duration.record(event.duration_ms / 1000, {**attrs, **extra})
            if event.cost_usd is None:
                self._unpriced.add(1, attrs)
            else:
                self._cost.add(float(event.cost_usd), attrs)
            for count, kind in subset_points(event):
                self._subsets.add(count, {**attrs, "lumen.token.type": kind})

    def _attributes(self, event: UsageEvent) -> dict[str, Any]:
        attrs: dict[str, Any] = metric_attributes(event)
        for key in ("gen_ai.request.model", "gen_ai.response.model"):
            if key in attrs:
                attrs[key] = self._model(attrs[key])
        names = (f"lumen.{name}" for name, _ in FLEET_LABELS)
        attrs.update(zip(names, fleet_values(event, self._bounds), strict=True))
        return attrs

    def stats(self) -> dict[str, int]:
        """Pushes and failed pushes of the periodic reader."""
        return {"pushes": self._exporter.pushes, "export_failures": self._exporter.failures}

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Push now (tests, shutdown)."""
        return bool(self._provider.force_flush(int(timeout_s * 1000)))

    def close(self) -> None:
        """Push a last time and stop the reader."""
        self._provider.shutdown()


class OtlpLogsSink:
    """Exports one log record per call, a batch per send."""

    name = "otlp_logs"

    def __init__(self, settings: OtlpSettings) -> None:
        _quiet_sdk()
        self._exporter = _log_exporter(settings)
        self._resource = resource_of(settings)
        self._scope = InstrumentationScope(_SCOPE, __version__)
        self._lock = threading.Lock()

    def _record(self, event: UsageEvent) -> ReadableLogRecord:
        failed = error_type(event) is not None
        record = LogRecord(
            timestamp=event.started_ns,
            observed_timestamp=time.time_ns(),
            severity_number=SeverityNumber.WARN if failed else SeverityNumber.INFO,
            severity_text="WARN" if failed else "INFO",
            body=f"{event.provider} {event.api} {event.model or 'unknown'}",
            attributes=log_attributes(event),
            event_name="lumen.usage",
        )
        return ReadableLogRecord(
            log_record=record, resource=self._resource, instrumentation_scope=self._scope
        )

    def send(self, events: Sequence[UsageEvent]) -> None:
        """Export the batch; raise when the collector did not take it (the runner retries)."""
        records = [self._record(e) for e in events]
        with self._lock:
            result = self._exporter.export(records)
        if result is not LogRecordExportResult.SUCCESS:
            raise ConnectionError("the collector did not accept the log batch")

    def close(self) -> None:
        """Close the exporter's connections."""
        self._exporter.shutdown()


def make_metrics(settings: OtlpSettings) -> OtlpMetricsSink:
    """Sink-table factory for ``otlp_metrics``."""
    return OtlpMetricsSink(settings)


def make_logs(settings: OtlpSettings) -> OtlpLogsSink:
    """Sink-table factory for ``otlp_logs``."""
    return OtlpLogsSink(settings)
