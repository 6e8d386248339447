"""Fixture data for the dashboard tests and screenshots: varied calls over recent days.

Times are relative to a given ``now`` so the dashboard's presets (1 h … 30 d)
show them; everything else is fixed by the seed. Models are real ones (so
genai-prices prices them and the cache panel has savings) plus one unpriced.
"""

from __future__ import annotations

import hashlib
import random
from decimal import Decimal

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import iso_from_ns

__all__ = ["MODELS", "fixture_events"]

MODELS: tuple[tuple[str, str, Decimal | None], ...] = (
    ("openai", "gpt-4o-mini", Decimal("0.00000015")),
    ("openai", "gpt-4.1", Decimal("0.000002")),
    ("anthropic", "claude-sonnet-4-20250514", Decimal("0.000003")),
    ("google", "gemini-2.5-flash", Decimal("0.0000003")),
    ("ollama", "llama3.2", None),
)
_PROCESSES = ("python3", "node", "celery", "curl")
_KEYS = ("k:sk-p…a1f3", "k:sk-a…09bc", "k:AIza…77e1")
_TENANTS = ("acme", "globex", None)
_HOUR_NS = 3_600 * 10**9


def fixture_events(now_ns: int, n: int = 1200, seed: int = 7, hours: int = 72) -> list[UsageEvent]:
    """``n`` calls spread over the ``hours`` before ``now_ns`` (denser recently)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        # Square the uniform draw: more calls near now, as on a busy day.
        at = now_ns - 60 * 10**9 - int((rng.random() ** 2) * hours * _HOUR_NS)
        provider, model, rate = rng.choice(MODELS)
        ok = rng.random() > 0.04
        tokens_in = rng.randrange(200, 9000) if ok else 0
        tokens_out = rng.randrange(10, 1500) if ok else 0
        cached = rng.randrange(0, tokens_in) if ok and rng.random() < 0.4 else 0
        written = rng.randrange(0, tokens_in - cached) if provider == "anthropic" and ok else 0
        reasoning = rng.randrange(0, tokens_out) if model == "gpt-4.1" and ok else 0
        estimated = provider == "ollama" and rng.random() < 0.5
        out.append(
            UsageEvent(
                id=hashlib.blake2b(f"dash:{seed}:{i}".encode(), digest_size=8).hexdigest(),
                started_at=iso_from_ns(at),
                started_ns=at,
                provider=provider,
                api="chat",
                model=model,
                stream=rng.random() < 0.5,
                status=200 if ok else rng.choice((429, 500)),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cache_read_tokens=cached,
                cache_write_tokens=written,
                reasoning_tokens=reasoning,
                cost_usd=None if rate is None else rate * (tokens_in + 4 * tokens_out),
                usage_source=(
                    UsageSource.ESTIMATED
                    if estimated
                    else UsageSource.REPORTED
                    if ok
                    else UsageSource.NONE
                ),
                pid=rng.randrange(1000, 60000),
                process=rng.choice(_PROCESSES),
                duration_ms=round(rng.uniform(150, 15000), 1),
                ttft_ms=round(rng.uniform(80, 1500), 1),
                api_key_id=rng.choice(_KEYS),
                tenant=rng.choice(_TENANTS),
                host="api.example.com",
                path="/v1/chat/completions",
                container=rng.choice(("3f2a9c1b0d4e", None)),
            )
        )
    out.sort(key=lambda e: e.started_ns)
    return out
