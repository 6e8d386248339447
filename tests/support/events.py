"""Made-up UsageEvents for the store and API tests (no capture involved)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from decimal import Decimal

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import iso_from_ns
from lumen_sniff.store import Totals
from lumen_sniff.store.rows import HOUR_NS, pusd_from_usd

__all__ = ["HOUR_NS", "MIN_NS", "T0", "brute_totals", "make_event", "random_events"]

T0 = 1_740_787_200 * 10**9
"""2025-03-01T00:00:00Z."""
MIN_NS = 60 * 10**9
_counter = iter(range(10**9))


def make_event(at_ns: int, **over: object) -> UsageEvent:
    """An event at ``at_ns`` with plausible defaults (store and API tests)."""
    fields: dict[str, object] = {
        "id": f"ev{next(_counter):012d}",
        "started_at": iso_from_ns(at_ns),
        "started_ns": at_ns,
        "provider": "openai",
        "api": "chat",
        "model": "gpt-4o-mini",
        "stream": False,
        "status": 200,
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": Decimal("0.000027"),
        "usage_source": UsageSource.REPORTED,
        "pid": 100,
        "process": "python3",
        "duration_ms": 500.0,
        "ttft_ms": 120.0,
        "api_key_id": "k:abcd…1234",
        "tenant": None,
        "host": "api.openai.com",
        "path": "/v1/chat/completions",
    }
    fields.update(over)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def random_events(n: int, seed: int, start_ns: int, span_ns: int) -> list[UsageEvent]:
    """Varied events: every group dimension, errors, unpriced and estimated ones."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        priced = rng.random() < 0.8
        cache_read = rng.randrange(0, 50)
        out.append(
            make_event(
                start_ns + rng.randrange(span_ns),
                provider=rng.choice(["openai", "anthropic", "google"]),
                model=rng.choice(["gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash", None]),
                process=rng.choice(["python3", "node", None]),
                api_key_id=rng.choice(["k:1", "k:2", None]),
                tenant=rng.choice(["acme", "globex", None]),
                container=rng.choice(["c0ffee", None]),
                service=rng.choice(["billing", "app.worker", None]),
                status=rng.choice([200, 200, 200, 429, 0]),
                input_tokens=cache_read + rng.randrange(0, 5000),
                output_tokens=rng.randrange(0, 900),
                cache_read_tokens=cache_read,
                cache_write_tokens=rng.randrange(0, 3),
                reasoning_tokens=rng.randrange(0, 7),
                cost_usd=Decimal(rng.randrange(0, 10**7)).scaleb(-9) if priced else None,
                usage_source=rng.choice(list(UsageSource)),
            )
        )
    return out


def brute_totals(events: Iterable[UsageEvent]) -> Totals:
    """Sums computed one event at a time: what every store query must equal."""
    t = Totals()
    for e in events:
        t.requests += 1
        t.errors += int(e.status >= 400 or e.status == 0 or e.error_type is not None)
        t.input_tokens += e.input_tokens
        t.output_tokens += e.output_tokens
        t.cache_read_tokens += e.cache_read_tokens
        t.cache_write_tokens += e.cache_write_tokens
        t.reasoning_tokens += e.reasoning_tokens
        if e.cost_usd is None:
            t.unpriced += 1
        else:
            t.priced += 1
            t.cost_pusd += pusd_from_usd(e.cost_usd)
        t.estimated += int(e.usage_source is UsageSource.ESTIMATED)
    return t
