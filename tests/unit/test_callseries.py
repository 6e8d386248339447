"""/metrics' per-call series, summed per batch, equal prometheus_client fed one event at a time.

The reference is prometheus_client's own Counter and Histogram, each event
through the label bounds in arrival order: what the listener did before it
summed batches (issue 12). Random batches mix every label (NULLs included),
errors, unpriced calls next to $0 ones, missing durations, and more values
than the bound keeps, so ``other`` and ``unknown`` are exercised.
"""

from __future__ import annotations

import random
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lumen_sniff.api.callseries import DURATION_BUCKETS_S, TTFT_BUCKETS_S, CallSeries
from lumen_sniff.labels import Bounded
from lumen_sniff.model import UsageEvent
from tests.support.events import T0, make_event

_CALL = ["provider", "model", "process", "service", "tenant"]
_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _events(rng: random.Random, n: int) -> list[UsageEvent]:
    def pick(*values: object) -> object:
        return rng.choice(values)

    return [
        make_event(
            T0 + i,
            provider=pick("openai", "anthropic", "google"),
            model=pick("m-a", "m-b", "m-c", "m-d", ""),
            process=pick("python3", "node", None),
            service=pick("bill", "search", None),
            tenant=pick("acme", "globex", "initech", None),
            status=pick(200, 200, 429, 0),
            input_tokens=rng.randrange(0, 5000),
            output_tokens=rng.randrange(0, 900),
            cache_read_tokens=rng.randrange(0, 50),
            cache_write_tokens=rng.randrange(0, 5),
            reasoning_tokens=rng.randrange(0, 7),
            cost_usd=pick(None, Decimal(0), Decimal("0.000027"), Decimal("1.5")),
            duration_ms=pick(None, 80.0, 1000.0, 999_999.0, rng.uniform(1, 400_000)),
            ttft_ms=pick(None, 50.0, rng.uniform(1, 90_000)),
        )
        for i in range(n)
    ]


def _reference(batches: list[list[UsageEvent]], max_values: int) -> CollectorRegistry:
    r = CollectorRegistry()
    requests = Counter("lumen_requests", "", [*_CALL, "status"], registry=r)
    tokens = Counter("lumen_tokens", "", [*_CALL, "type"], registry=r)
    cost = Counter("lumen_cost_usd", "", _CALL, registry=r)
    unpriced = Counter(
        "lumen_unpriced_requests", "", ["provider", "model", "service", "tenant"], registry=r
    )
    duration = Histogram(
        "lumen_request_duration_seconds",
        "",
        ["provider", "model"],
        buckets=DURATION_BUCKETS_S,
        registry=r,
    )
    ttft = Histogram(
        "lumen_ttft_seconds", "", ["provider", "model"], buckets=TTFT_BUCKETS_S, registry=r
    )
    bounds = {name: Bounded(max_values) for name in (*_CALL, "status")}
    costs: dict[tuple[str, ...], Decimal] = {}
    for e in (e for batch in batches for e in batch):
        call = tuple(bounds[n](getattr(e, n)) for n in _CALL)
        requests.labels(*call, bounds["status"](e.status)).inc()
        values = (
            e.input_tokens,
            e.output_tokens,
            e.cache_read_tokens,
            e.cache_write_tokens,
            e.reasoning_tokens,
        )
        for kind, value in zip(_TYPES, values, strict=True):
            tokens.labels(*call, kind).inc(value)
        if e.cost_usd is None:
            unpriced.labels(call[0], call[1], *call[3:]).inc()
        else:
            costs[call] = costs.get(call, Decimal(0)) + e.cost_usd
        if e.duration_ms is not None:
            duration.labels(*call[:2]).observe(e.duration_ms / 1000)
        if e.ttft_ms is not None:
            ttft.labels(*call[:2]).observe(e.ttft_ms / 1000)
    for call, total in costs.items():  # summed exactly, as the series keep cost
        cost.labels(*call).inc(float(total))
    return r


def _samples(registry: CollectorRegistry) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_batched_series_equal_one_event_at_a_time() -> None:
    rng = random.Random(12)
    for max_values in (2, 3, 50):
        batches = [_events(rng, rng.randrange(1, 400)) for _ in range(6)]
        series = CallSeries(max_values)
        registry = CollectorRegistry()
        registry.register(series)
        for batch in batches[:3]:
            series.add(batch)
        first = _samples(registry)
        # Every series is exported at 0 by the first scrape that sees it...
        assert first and set(first.values()) == {0.0}
        for batch in batches[3:]:
            series.add(batch)
        # ...and with every event of every batch from the next one on (series
        # that the later batches opened are at 0 in the next scrape, see below).
        _samples(registry)
        got = _samples(registry)
        want = _samples(_reference(batches, max_values))
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == value or abs(got[key] - value) <= 1e-9 * abs(value), key


def test_series_first_seen_after_a_scrape_start_at_zero() -> None:
    series = CallSeries(50)
    registry = CollectorRegistry()
    registry.register(series)
    series.add([make_event(T0, model="m-a")])
    _samples(registry)
    series.add([make_event(T0, model="m-a"), make_event(T0, model="m-new")])
    got = _samples(registry)
    key = "lumen_requests_total", "model"
    values = {dict(labels)["model"]: v for (name, labels), v in got.items() if name == key[0]}
    assert values == {"m-a": 2.0, "m-new": 0.0}
    again = _samples(registry)
    values = {dict(labels)["model"]: v for (name, labels), v in again.items() if name == key[0]}
    assert values == {"m-a": 2.0, "m-new": 1.0}
