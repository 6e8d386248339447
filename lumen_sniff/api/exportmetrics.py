"""Prometheus metrics of the export sinks, read from the daemon's status at scrape time.

* ``lumen_export_dropped_total{sink,reason}``: records a sink did not deliver
  (``queue_full``, ``export_failed``, ``rejected``, ``shutdown``). Every reason
  is exported from the start, at 0, so ``increase()`` sees the first drop.
* ``lumen_export_sent_total{sink}``: records delivered.
* ``lumen_export_failures_total{sink}``: failed send attempts (retries included).
* ``lumen_export_queue_records{sink}``: records waiting now.

Only enabled sinks appear. The daemon's ``status()["export"]`` maps each sink
name to its runner's ``stats()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.sinks.base import DROP_REASONS

__all__ = ["ExportCollector"]


class ExportCollector(Collector):
    """Sink counters from ``status()["export"]``."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        try:
            sinks: Mapping[str, Mapping[str, Any]] = self._status().get("export") or {}
        except Exception:  # the daemon's status must never break a scrape
            sinks = {}
        dropped = CounterMetricFamily(
            "lumen_export_dropped",
            "Records an export sink did not deliver, by reason.",
            labels=["sink", "reason"],
        )
        sent = CounterMetricFamily(
            "lumen_export_sent", "Records delivered by an export sink.", labels=["sink"]
        )
        failures = CounterMetricFamily(
            "lumen_export_failures", "Failed send attempts (retries included).", labels=["sink"]
        )
        queued = GaugeMetricFamily(
            "lumen_export_queue_records", "Records waiting to be sent.", labels=["sink"]
        )
        for name, stats in sorted(sinks.items()):
            counts = dict(stats.get("dropped") or {})
            for reason in sorted(set(DROP_REASONS) | set(counts)):
                dropped.add_metric([name, reason], int(counts.get(reason, 0)))
            sent.add_metric([name], int(stats.get("sent", 0)))
            failures.add_metric(
                [name], int(stats.get("failures", 0)) + int(stats.get("export_failures", 0))
            )
            queued.add_metric([name], int(stats.get("queue", 0)))
        yield from (dropped, sent, failures, queued)
