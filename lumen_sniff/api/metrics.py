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
0 and the next one shows what it counted (histograms too, up to 1000 held
observations per series) (see ``Metrics._inc``), so
``increase()`` counts a series' first calls too. With two scrapers (an HA
pair), only the first to scrape gets the 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.api.exportmetrics import ExportCollector
from lumen_sniff.labels import FLEET_LABELS, Bounded, fleet_values
from lumen_sniff.model import UsageEvent

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus text exposition format."""

_MAX_HELD = 1000
"""Observations held per new histogram series before the first scrape (then observed)."""
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
_DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))
_TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf"))


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
        fleet = [name for name, _ in FLEET_LABELS]
        self._requests = Counter(
            "lumen_requests",
            "LLM API calls stored.",
            ["provider", "model", "process", *fleet, "status"],
            registry=r,
        )
        self._tokens = Counter(
            "lumen_tokens",
            "Tokens by type (cache counts are part of input, reasoning of output).",
            ["provider", "model", "process", *fleet, "type"],
            registry=r,
        )
        self._cost = Counter(
            "lumen_cost_usd",
            "Priced cost in USD.",
            ["provider", "model", "process", *fleet],
            registry=r,
        )
        self._unpriced = Counter(
            "lumen_unpriced_requests",
            "Calls with no known price (not counted as $0).",
            ["provider", "model", *fleet],
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
        r.register(ExportCollector(status))
        self._provider = Bounded(max_values)
        self._model = Bounded(max_values)
        self._process = Bounded(max_values)
        self._status = Bounded(max_values)
        self._fleet = tuple(Bounded(max_values) for _ in FLEET_LABELS)
        self._lock = threading.Lock()
        self._shown: set[tuple[int, tuple[str, ...]]] = set()
        self._held: dict[tuple[int, tuple[str, ...]], tuple[Counter, tuple[str, ...], float]] = {}
        self._held_obs: dict[
            tuple[int, tuple[str, ...]], tuple[Histogram, tuple[str, ...], list[float]]
        ] = {}

    def committed(self, events: Sequence[UsageEvent]) -> None:
        """Count a committed batch (sums per label set first: one inc per series)."""
        requests: dict[tuple[str, ...], int] = {}
        tokens: dict[tuple[str, ...], list[int]] = {}
        costs: dict[tuple[str, ...], Decimal] = {}
        unpriced: dict[tuple[str, ...], int] = {}
        # Histogram values per series too: one label lookup per series and batch.
        durations: dict[tuple[str, ...], list[float]] = {}
        ttfts: dict[tuple[str, ...], list[float]] = {}
        for e in events:
            provider = self._provider(e.provider)
            model = self._model(e.model)
            fleet = fleet_values(e, self._fleet)
            key = (provider, model, self._process(e.process), *fleet)
            rkey = (*key, self._status(e.status))
            requests[rkey] = requests.get(rkey, 0) + 1
            sums = tokens.setdefault(key, [0, 0, 0, 0, 0])
            sums[0] += e.input_tokens
            sums[1] += e.output_tokens
            sums[2] += e.cache_read_tokens
            sums[3] += e.cache_write_tokens
            sums[4] += e.reasoning_tokens
            if e.cost_usd is None:
                ukey = (provider, model, *fleet)
                unpriced[ukey] = unpriced.get(ukey, 0) + 1
            else:
                costs[key] = costs.get(key, Decimal(0)) + e.cost_usd
            if e.duration_ms is not None:
                durations.setdefault((provider, model), []).append(e.duration_ms / 1000)
            if e.ttft_ms is not None:
                ttfts.setdefault((provider, model), []).append(e.ttft_ms / 1000)
        for rkey, count in requests.items():
            self._inc(self._requests, rkey, count)
        for key, sums in tokens.items():
            for kind, value in zip(_TOKEN_TYPES, sums, strict=True):
                self._inc(self._tokens, (*key, kind), value)
        for key, cost in costs.items():
            self._inc(self._cost, key, float(cost))
        for ukey, count in unpriced.items():
            self._inc(self._unpriced, ukey, count)
        for hkey, values in durations.items():
            self._observe(self._duration, hkey, values)
        for hkey, values in ttfts.items():
            self._observe(self._ttft, hkey, values)

    def _inc(self, counter: Counter, key: tuple[str, ...], amount: float) -> None:
        """Increment a series, or hold the amount until the series has been scraped at 0.

        A counter series that first appears with its value already above 0 loses
        that value in ``increase()``/``rate()`` (Prometheus has no earlier sample
        to take the difference from), and a call that opens a series is exactly
        a fleet's long tail: a new tenant, model or process. So a new series is
        exported at 0 first, and what it counted waits for the next scrape.
        """
        ident = (id(counter), key)
        with self._lock:
            if ident in self._shown:
                counter.labels(*key).inc(amount)
                return
            counter.labels(*key)  # created at 0: the next scrape shows it so
            # One entry per series (bounded like the labels), however long no one scrapes.
            _, _, held = self._held.get(ident, (counter, key, 0.0))
            self._held[ident] = (counter, key, held + amount)

    def _observe(self, histogram: Histogram, key: tuple[str, ...], values: list[float]) -> None:
        """Observe into a histogram series, held like :meth:`_inc` until it was scraped at 0."""
        ident = (id(histogram), key)
        with self._lock:
            child = histogram.labels(*key)
            held = self._held_obs.get(ident)
            for value in values:
                if ident in self._shown or (held is not None and len(held[2]) >= _MAX_HELD):
                    child.observe(value)
                    continue
                if held is None:
                    held = self._held_obs[ident] = (histogram, key, [])
                held[2].append(value)

    def closed(self) -> None:
        """Nothing to release (part of the commit-listener protocol)."""

    def render(self) -> bytes:
        """The exposition text of every metric; releases the held increments after it."""
        with self._lock:
            text = generate_latest(self.registry)
            for ident, (counter, key, amount) in self._held.items():
                self._shown.add(ident)
                counter.labels(*key).inc(amount)
            self._held.clear()
            for ident, (histogram, key, values) in self._held_obs.items():
                self._shown.add(ident)
                for value in values:
                    histogram.labels(*key).observe(value)
            self._held_obs.clear()
        return text
