"""Prometheus metrics for ``GET /metrics``, in the app's own CollectorRegistry.

Exposed (counters count since the daemon started, as Prometheus expects):

* ``lumen_requests_total{provider,model,process,service,tenant,status}`` LLM calls stored.
* ``lumen_tokens_total{provider,model,process,service,tenant,type}`` tokens; ``type`` is
  ``input``, ``output``, ``cache_read``, ``cache_write`` or ``reasoning``
  (normalised convention: cache counts are part of input, reasoning of output).
* ``lumen_cost_usd_total{provider,model,process,service,tenant}`` priced cost in USD.
* ``lumen_unpriced_requests_total{provider,model,service,tenant}`` calls with no price (not $0).
* ``lumen_request_duration_seconds{provider,model}`` and
  ``lumen_ttft_seconds{provider,model}`` histograms.
* ``lumen_capture_dropped_total{reason}`` every record lost, by reason: the
  capture's drops (from the daemon's ``status()["dropped"]``) plus the store's.
* ``lumen_unseen_connections_total{process,host}`` TLS connections to LLM hosts
  whose plaintext could not be read (the blind-spot report of ``/api/status``;
  bounded by its row cap).
* ``lumen_store_events`` and ``lumen_store_queue_events`` gauges, ``lumen_ready``.
* ``lumen_export_*{sink}``: the export sinks (see :mod:`lumen_sniff.api.exportmetrics`).

Fleet labels: ``service`` and ``tenant`` (every row of
:data:`lumen_sniff.labels.FLEET_LABELS`) follows ``process`` on the per-call
series. The host is not a label here: Prometheus adds it from the target.

Restarts: counters start at 0 when the daemon starts and are never re-seeded
from the database. Prometheus' ``increase()``/``rate()`` treat the drop to 0
as a reset and count only what follows, so a restart neither loses nor
double-counts. Re-seeding from the database would: a seeded value below the
last scrape (events still in flight at the stop, a label value that now maps
to ``other`` in a different first-seen order, retention pruning) reads as a
reset, and ``increase()`` would count the whole history again.

Bounded cardinality: each label (provider, model, process, service, tenant, status) keeps the
first ``max_values`` distinct values it sees (50 by default) and reports every
later value as ``other``; a missing value is ``unknown`` (see
:class:`lumen_sniff.labels.Bounded`). So at most ~50⁶ label sets can exist in
theory and, since real traffic is correlated, a few hundred in practice.

Metrics are updated from the writer's commit notifications, aggregated per
batch, so they never count an event the database does not hold.

New series start at 0: the first scrape after a label set appears shows it at
0 and the next one shows what it counted (histograms too; see
:mod:`lumen_sniff.api.callseries`), so ``increase()`` counts a series' first
calls too. With two scrapers (an HA pair), only the first to scrape gets the 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.api.callseries import CallSeries
from lumen_sniff.api.exportmetrics import ExportCollector
from lumen_sniff.model import UsageEvent

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus text exposition format."""


class _StatusCollector(Collector):
    """Read at scrape time: drops, store gauges and readiness."""

    def __init__(
        self, status: Callable[[], Mapping[str, Any]], store_stats: Callable[[], Mapping[str, Any]]
    ) -> None:
        self._status = status
        self._store_stats = store_stats

    def collect(self) -> Iterable[Metric]:
        try:
            capture = dict(self._status())
        except Exception as exc:  # status() is the daemon's; a scrape must still answer
            capture = {"ready": False, "dropped": {"status_error": 0}, "error": str(exc)}
        store = dict(self._store_stats())
        dropped: dict[str, int] = {}
        for source in (capture.get("dropped") or {}, store.get("drops") or {}):
            for reason, count in source.items():
                dropped[str(reason)] = dropped.get(str(reason), 0) + int(count)
        family = CounterMetricFamily(
            "lumen_capture_dropped",
            "Records lost before storage, by reason (capture, pipeline and store).",
            labels=["reason"],
        )
        for reason, count in sorted(dropped.items()):
            family.add_metric([reason], count)
        yield family
        unseen: dict[tuple[str, str], int] = {}
        for row in capture.get("unseen") or ():
            key = (str(row.get("process") or "unknown"), str(row.get("host") or "unknown"))
            unseen[key] = unseen.get(key, 0) + int(row.get("connections", 0))
        family = CounterMetricFamily(
            "lumen_unseen_connections",
            "TLS connections to LLM API hosts whose plaintext lumen-sniff could not read.",
            labels=["process", "host"],
        )
        for (process, host), count in sorted(unseen.items()):
            family.add_metric([process, host], count)
        yield family
        yield GaugeMetricFamily(
            "lumen_store_events", "Events in the database.", value=int(store.get("events", 0))
        )
        yield GaugeMetricFamily(
            "lumen_store_queue_events",
            "Events waiting for the store writer.",
            value=int(store.get("queue", 0)),
        )
        yield GaugeMetricFamily(
            "lumen_ready", "1 when capture is attached.", value=1 if capture.get("ready") else 0
        )


class Metrics:
    """The registry, its metrics, and a store commit listener that feeds them."""

    def __init__(
        self,
        status: Callable[[], Mapping[str, Any]],
        store_stats: Callable[[], Mapping[str, Any]],
        *,
        max_values: int = 50,
    ) -> None:
        """Create the metrics.

        Args:
            status: The daemon's status callable (its ``dropped`` mapping is exported).
            store_stats: The store's stats callable (drops, event count, queue).
            max_values: Distinct values kept per label before ``other``.
        """
        self.registry = CollectorRegistry(auto_describe=True)
        """The app's own registry (never the process-global one)."""
        self._calls = CallSeries(max_values)
        self.registry.register(self._calls)
        self.registry.register(_StatusCollector(status, store_stats))
        self.registry.register(ExportCollector(status))

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """Count a committed batch (summed per label set: see :mod:`.callseries`)."""
        self._calls.add(events)

    def closed(self) -> None:
        """Nothing to release (part of the commit-listener protocol)."""

    def render(self) -> bytes:
        """The exposition text of every metric (new series at 0 the first time)."""
        return generate_latest(self.registry)
