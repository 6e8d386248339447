"""Prometheus metrics for ``GET /metrics``, in the app's own CollectorRegistry.

Exposed (counters count since the daemon started, as Prometheus expects):

* ``lumen_requests_total{provider,model,process,service,status}`` LLM calls stored.
* ``lumen_tokens_total{provider,model,process,service,type}`` tokens; ``type`` is
  ``input``, ``output``, ``cache_read``, ``cache_write`` or ``reasoning``
  (normalised convention: cache counts are part of input, reasoning of output).
* ``lumen_cost_usd_total{provider,model,process,service}`` priced cost in USD.
* ``lumen_unpriced_requests_total{provider,model}`` calls with no price (not $0).
* ``lumen_request_duration_seconds{provider,model}`` and
  ``lumen_ttft_seconds{provider,model}`` histograms.
* ``lumen_capture_dropped_total{reason}`` every record lost, by reason: the
  capture's drops (from the daemon's ``status()["dropped"]``) plus the store's.
* ``lumen_unseen_connections_total{process,host}`` TLS connections to LLM hosts
  whose plaintext could not be read (the blind-spot report of ``/api/status``;
  bounded by its row cap).
* ``lumen_store_events`` and ``lumen_store_queue_events`` gauges, ``lumen_ready``.

Bounded cardinality: each label (provider, model, process, service, status) keeps the
first ``max_values`` distinct values it sees (50 by default) and reports every
later value as ``other``; a missing value is ``unknown``. First-seen rather
than top-N keeps a series' meaning stable for the daemon's life, and the busy
values are, in practice, the ones seen first. So at most ~50⁵ label sets can
exist in theory and, since real traffic is correlated (a service mostly runs
one process name), a few hundred in practice.

Metrics are updated from the writer's commit notifications, aggregated per
batch, so they never count an event the database does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.model import UsageEvent

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus text exposition format."""

_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
_DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))
_TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf"))


class _Bounded:
    """Maps a label's values to themselves for the first N seen, then to ``other``."""

    def __init__(self, max_values: int) -> None:
        self._max = max_values
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        text = "unknown" if value is None or value == "" else str(value)
        if text in self._seen:
            return text
        if len(self._seen) < self._max:
            self._seen.add(text)
            return text
        return "other"


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
        r = self.registry
        self._requests = Counter(
            "lumen_requests",
            "LLM API calls stored.",
            ["provider", "model", "process", "service", "status"],
            registry=r,
        )
        self._tokens = Counter(
            "lumen_tokens",
            "Tokens by type (cache counts are part of input, reasoning of output).",
            ["provider", "model", "process", "service", "type"],
            registry=r,
        )
        self._cost = Counter(
            "lumen_cost_usd",
            "Priced cost in USD.",
            ["provider", "model", "process", "service"],
            registry=r,
        )
        self._unpriced = Counter(
            "lumen_unpriced_requests",
            "Calls with no known price (not counted as $0).",
            ["provider", "model"],
            registry=r,
        )
        self._duration = Histogram(
            "lumen_request_duration_seconds",
            "Request start to response end.",
            ["provider", "model"],
            buckets=_DURATION_BUCKETS_S,
            registry=r,
        )
        self._ttft = Histogram(
            "lumen_ttft_seconds",
            "Request start to first response byte.",
            ["provider", "model"],
            buckets=_TTFT_BUCKETS_S,
            registry=r,
        )
        r.register(_StatusCollector(status, store_stats))
        self._provider = _Bounded(max_values)
        self._model = _Bounded(max_values)
        self._process = _Bounded(max_values)
        self._service = _Bounded(max_values)
        self._status = _Bounded(max_values)

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """Count a committed batch (sums per label set first: one inc per series)."""
        requests: dict[tuple[str, str, str, str, str], int] = {}
        tokens: dict[tuple[str, str, str, str], list[int]] = {}
        costs: dict[tuple[str, str, str, str], Decimal] = {}
        unpriced: dict[tuple[str, str], int] = {}
        for e in events:
            provider = self._provider(e.provider)
            model = self._model(e.model)
            process = self._process(e.process)
            key = (provider, model, process, self._service(e.service))
            rkey = (*key, self._status(e.status))
            requests[rkey] = requests.get(rkey, 0) + 1
            sums = tokens.setdefault(key, [0, 0, 0, 0, 0])
            sums[0] += e.input_tokens
            sums[1] += e.output_tokens
            sums[2] += e.cache_read_tokens
            sums[3] += e.cache_write_tokens
            sums[4] += e.reasoning_tokens
            if e.cost_usd is None:
                unpriced[(provider, model)] = unpriced.get((provider, model), 0) + 1
            else:
                costs[key] = costs.get(key, Decimal(0)) + e.cost_usd
            if e.duration_ms is not None:
                self._duration.labels(provider, model).observe(e.duration_ms / 1000)
            if e.ttft_ms is not None:
                self._ttft.labels(provider, model).observe(e.ttft_ms / 1000)
        for rkey, count in requests.items():
            self._requests.labels(*rkey).inc(count)
        for key, sums in tokens.items():
            for kind, value in zip(_TOKEN_TYPES, sums, strict=True):
                self._tokens.labels(*key, kind).inc(value)
        for key, cost in costs.items():
            self._cost.labels(*key).inc(float(cost))
        for ukey, count in unpriced.items():
            self._unpriced.labels(*ukey).inc(count)

    def closed(self) -> None:
        """Nothing to release (part of the commit-listener protocol)."""

    def render(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)
