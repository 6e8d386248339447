"""The per-call series of ``/metrics``: summed in plain dicts per batch, exported at scrape.

Why not prometheus_client's ``Counter``/``Histogram``: each increment there is
a ``labels()`` lookup (label validation, a lock) and each observation another
lock, several per event for a batch of varied calls; the store's insert rate
with the metrics listener was bounded by them (issue 12). Here a committed
batch is first grouped by its events' raw label values (one tuple and one dict
append per event), each group's values go through the label bounds once, and
its sums are added to plain dicts. A scrape builds the metric families from
those dicts (:meth:`CallSeries.collect`): its cost depends on the number of
series, not of events.

New series start at 0: a series is exported at 0 by the first scrape that sees
it and with its value from the next one on, so ``increase()`` counts a
series' first calls too (Prometheus has no earlier sample to take the
difference from). With two scrapers (an HA pair), only the first gets the 0.
"""

from __future__ import annotations

import operator
import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.labels import FLEET_LABELS, Bounded
from lumen_sniff.model import UsageEvent

__all__ = ["DURATION_BUCKETS_S", "TTFT_BUCKETS_S", "CallSeries"]

DURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))
TTFT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf"))
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")
_FLEET = tuple(name for name, _ in FLEET_LABELS)
_CALL = ("provider", "model", "process", *_FLEET)
_RAW_KEY = operator.attrgetter("provider", "model", "process", *_FLEET, "status")
"""The raw label values of an event's series: (provider, model, process, *fleet, status)."""
_N_CALL = len(_CALL)
_LE = {
    b: "+Inf" if b == float("inf") else repr(float(b))
    for b in (*DURATION_BUCKETS_S, *TTFT_BUCKETS_S)
}
"""``le`` label per bucket bound, as prometheus_client writes it (``1.0``, ``+Inf``)."""
_Labels = tuple[str, ...]


class _Histogram:
    """One histogram series: per-bucket (not cumulative) counts and the sum."""

    __slots__ = ("counts", "total")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * n_buckets
        self.total = 0.0


class CallSeries(Collector):
    """Requests, tokens, cost, unpriced calls, duration and TTFT per label set."""

    def __init__(self, max_values: int) -> None:
        """Create empty series; each label keeps its first ``max_values`` values."""
        self._bounds = tuple(Bounded(max_values) for _ in (*_CALL, "status"))
        self._lock = threading.Lock()
        self._requests: dict[_Labels, int] = {}
        self._tokens: dict[_Labels, int] = {}
        self._cost: dict[_Labels, Decimal] = {}
        self._unpriced: dict[_Labels, int] = {}
        self._duration: dict[_Labels, _Histogram] = {}
        self._ttft: dict[_Labels, _Histogram] = {}
        self._shown: set[tuple[str, _Labels]] = set()
        """(family, labels) already exported at 0: exported with their values now."""

    def add(self, events: Sequence[UsageEvent]) -> None:
        """Count a committed batch."""
        groups: dict[tuple[object, ...], list[UsageEvent]] = {}
        for e in events:
            key = _RAW_KEY(e)
            group = groups.get(key)
            if group is None:
                groups[key] = [e]
            else:
                group.append(e)
        with self._lock:
            for raw, group in groups.items():
                # Bounded in the events' first-seen order, as one call per event would.
                labels = tuple(bound(v) for bound, v in zip(self._bounds, raw, strict=True))
                self._add_group(labels[:_N_CALL], labels[_N_CALL], group)

    def _add_group(self, call: _Labels, status: str, group: list[UsageEvent]) -> None:
        rkey = (*call, status)
        self._requests[rkey] = self._requests.get(rkey, 0) + len(group)
        sums = (
            sum(e.input_tokens for e in group),
            sum(e.output_tokens for e in group),
            sum(e.cache_read_tokens for e in group),
            sum(e.cache_write_tokens for e in group),
            sum(e.reasoning_tokens for e in group),
        )
        tokens = self._tokens
        for kind, value in zip(_TOKEN_TYPES, sums, strict=True):
            tkey = (*call, kind)
            tokens[tkey] = tokens.get(tkey, 0) + value
        costs = [e.cost_usd for e in group if e.cost_usd is not None]
        if costs:
            self._cost[call] = self._cost.get(call, Decimal(0)) + sum(costs, Decimal(0))
        if len(costs) < len(group):
            ukey = (call[0], call[1], *call[3:])  # no process: bounded cardinality
            self._unpriced[ukey] = self._unpriced.get(ukey, 0) + len(group) - len(costs)
        pm = call[:2]
        _observe(self._duration, pm, DURATION_BUCKETS_S, [e.duration_ms for e in group])
        _observe(self._ttft, pm, TTFT_BUCKETS_S, [e.ttft_ms for e in group])

    def collect(self) -> Iterable[Metric]:
        """The families; a series seen for the first time is exported at 0."""
        with self._lock:
            yield self._counter(
                "lumen_requests", "LLM API calls stored.", [*_CALL, "status"], self._requests
            )
            yield self._counter(
                "lumen_tokens",
                "Tokens by type (cache counts are part of input, reasoning of output).",
                [*_CALL, "type"],
                self._tokens,
            )
            yield self._counter("lumen_cost_usd", "Priced cost in USD.", list(_CALL), self._cost)
            yield self._counter(
                "lumen_unpriced_requests",
                "Calls with no known price (not counted as $0).",
                ["provider", "model", *_FLEET],
                self._unpriced,
            )
            yield self._histogram(
                "lumen_request_duration_seconds",
                "Request start to response end.",
                DURATION_BUCKETS_S,
                self._duration,
            )
            yield self._histogram(
                "lumen_ttft_seconds",
                "Request start to first response byte.",
                TTFT_BUCKETS_S,
                self._ttft,
            )

    def _first(self, name: str, labels: _Labels) -> bool:
        """True the first time ``labels`` is exported in ``name`` (export it at 0)."""
        ident = (name, labels)
        if ident in self._shown:
            return False
        self._shown.add(ident)
        return True

    def _counter(
        self,
        name: str,
        doc: str,
        names: list[str],
        values: Mapping[_Labels, int | Decimal],
    ) -> Metric:
        family = CounterMetricFamily(name, doc, labels=names)
        for labels, value in values.items():
            family.add_metric(list(labels), 0 if self._first(name, labels) else float(value))
        return family

    def _histogram(
        self, name: str, doc: str, bounds: tuple[float, ...], values: dict[_Labels, _Histogram]
    ) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=["provider", "model"])
        for labels, hist in values.items():
            zero = self._first(name, labels)
            cumulative, running = [], 0
            for bound, count in zip(bounds, hist.counts, strict=True):
                running += 0 if zero else count
                cumulative.append((_LE[bound], running))
            family.add_metric(list(labels), cumulative, 0 if zero else hist.total)
        return family


def _observe(
    series: dict[_Labels, _Histogram],
    key: _Labels,
    bounds: tuple[float, ...],
    values_ms: list[float | None],
) -> None:
    hist: _Histogram | None = None
    for ms in values_ms:
        if ms is None:
            continue
        if hist is None:
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(len(bounds))
        seconds = ms / 1000
        hist.counts[bisect_left(bounds, seconds)] += 1
        hist.total += seconds
