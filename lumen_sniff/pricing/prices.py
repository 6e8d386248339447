"""Price normalised usage with genai-prices, or with the user's overrides.

Strategy
--------
``genai_prices.calc_price`` decomposes usage through its unit registry on every
call (about 50 µs), which alone would eat a quarter of the 5,000 exchanges/s
budget. So the Pricer:

1. memoises the model lookup per (provider, model), misses included, in a
   bounded dict (model names come from arbitrary traffic);
2. resolves the model's price set for the request time (dated prices change
   on a given day, some even by time of day), which is a cheap attribute walk;
3. for a price set with per-token rates (plain or tiered by input size) on the
   four counts we report (input, output, cache read, cache write), does the
   same arithmetic as genai-prices directly (an unpriced cache count falls
   back to the input rate, as genai-prices' decomposition does). Per-request
   fees or modality-only prices go through ``calc_price`` unchanged.
   ``tests/unit/test_pricing.py`` checks that both paths agree for every model
   genai-prices knows.

Money is ``Decimal`` end to end. An unknown model is unpriced (``None``), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp_types

from lumen_sniff.model import Usage
from lumen_sniff.pricing.overrides import ModelPrice, find_override

__all__ = ["GENAI_PRICES_SOURCE", "OVERRIDE_SOURCE", "PriceResult", "Pricer"]

GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"
"""``price_source`` of events priced from genai-prices' bundled data."""
OVERRIDE_SOURCE = "override"
"""``price_source`` of events priced from a user override."""

_MEMO_MAX = 4096
_PER_MTOK = Decimal(1_000_000)

_PROVIDER_ALIASES: Mapping[str, str] = {
    "gemini": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "google-vertex": "google",
    "xai": "x-ai",
    "grok": "x-ai",
    "bedrock": "aws",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks_ai": "fireworks",
    "mistralai": "mistral",
    "moonshot": "moonshotai",
}
"""Our provider names → genai-prices provider ids, where they differ."""

_LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "llamacpp", "llama.cpp", "lmstudio", "localai"})
"""Self-hosted servers: a model name they share with a cloud API (e.g.
"deepseek-r1") must not borrow that API's per-token price, so only user
overrides price them."""

_FAST_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"})


@dataclass(frozen=True, kw_only=True, slots=True)
class PriceResult:
    """The cost of one call, and what priced it."""

    cost_usd: Decimal | None
    """Cost in USD; None when nothing prices the model."""
    source: str | None
    """``GENAI_PRICES_SOURCE``, ``OVERRIDE_SOURCE``, or None when unpriced."""


_UNPRICED = PriceResult(cost_usd=None, source=None)


_Rate = Decimal | gp_types.TieredPrices


@dataclass(frozen=True, slots=True)
class _Rates:
    """Per-million rates of one genai-prices price set (the fast path)."""

    input: _Rate
    output: _Rate
    cache_read: _Rate
    cache_write: _Rate
    flat: tuple[Decimal, Decimal, Decimal, Decimal] | None
    """The four rates when none is tiered (the common case: no per-call work)."""


@dataclass(frozen=True, slots=True)
class _Found:
    """A memoised genai-prices lookup."""

    provider: gp_types.Provider
    model: gp_types.ModelInfo
    rates: _Rates | None
    """Fast-path rates when the model has one undated price set."""


class Pricer:
    """Prices usage: user overrides first, then genai-prices.

    Args:
        overrides: ``{model: ModelPrice}`` (see
            :func:`lumen_sniff.pricing.overrides.overrides_from`); model names
            are matched case-insensitively.
    """

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self._overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self._snapshot = data_snapshot.get_snapshot()
        self._found: dict[tuple[str, str], _Found | None] = {}
        # Keyed by id(): genai-prices' ModelPrice is unhashable. The value keeps
        # the object alive so an id is never reused for another price set.
        self._rates: dict[int, tuple[object, _Rates | None]] = {}
        self.stats: dict[str, int] = {"price_errors": 0}
        """Counters: genai-prices calls that raised (the event is unpriced)."""

    def price(self, provider: str, model: str | None, usage: Usage, at_ns: int) -> PriceResult:
        """Price one call.

        Args:
            provider: Our provider name ("openai", "anthropic", "google", …).
            model: Model name from the response or request; None prices nothing.
            usage: Normalised usage.
            at_ns: Request time, UNIX nanoseconds (selects dated prices).

        Returns:
            Cost and source; ``PriceResult(None, None)`` when the model is unknown.
        """
        if not model:
            return _UNPRICED
        if self._overrides:
            override = find_override(self._overrides, provider, model)
            if override is not None:
                return PriceResult(cost_usd=override.cost_usd(usage), source=OVERRIDE_SOURCE)
        found = self._lookup(provider, model)
        if found is None:
            return _UNPRICED
        inp, out = usage.input_tokens, usage.output_tokens
        read, write = usage.cache_read_tokens, usage.cache_write_tokens
        if read < 0 or write < 0 or out < 0 or read + write > inp:
            usage = _clamped(usage)
            inp, out = usage.input_tokens, usage.output_tokens
            read, write = usage.cache_read_tokens, usage.cache_write_tokens
        if found.rates is not None:
            return PriceResult(
                cost_usd=_cost(found.rates, inp, out, read, write), source=GENAI_PRICES_SOURCE
            )
        try:
            prices = found.model.prices
            if isinstance(prices, gp_types.ModelPrice):
                when = None
                model_price = prices
            else:  # dated prices: pick the set in force at the request time
                when = _datetime(at_ns)
                model_price = found.model.get_prices(when)
            rates = self._fast_rates(model_price)
            if rates is not None:
                return PriceResult(
                    cost_usd=_cost(rates, inp, out, read, write), source=GENAI_PRICES_SOURCE
                )
            calc = found.model.calc_price(
                _gp_usage(usage), found.provider, genai_request_timestamp=when or _datetime(at_ns)
            )
        except (ValueError, ArithmeticError, LookupError, TypeError):
            self.stats["price_errors"] += 1
            return _UNPRICED
        return PriceResult(cost_usd=calc.total_price, source=GENAI_PRICES_SOURCE)

    # ------------------------------------------------------------------ lookup

    def _lookup(self, provider: str, model: str) -> _Found | None:
        key = (provider, model)
        try:
            return self._found[key]
        except KeyError:
            pass
        found = self._find(provider, model)
        if len(self._found) >= _MEMO_MAX:
            self._found.clear()
        self._found[key] = found
        return found

    def _find(self, provider: str, model: str) -> _Found | None:
        name = provider.lower()
        if name in _LOCAL_PROVIDERS:
            return None
        gp_provider = data_snapshot.find_provider_by_id(
            self._snapshot.providers, _PROVIDER_ALIASES.get(name, name)
        )
        attempts: list[str | None] = [gp_provider.id] if gp_provider is not None else []
        # A relay classified as one provider may serve another's models
        # (a gateway speaking the OpenAI API in front of Claude): fall back to
        # genai-prices' own model matching before giving up.
        attempts.append(None)
        for provider_id in attempts:
            try:
                found_provider, found_model = self._snapshot.find_provider_model(
                    model, None, provider_id, None
                )
            except LookupError:
                continue
            prices = found_model.prices
            return _Found(
                provider=found_provider,
                model=found_model,
                rates=self._fast_rates(prices) if isinstance(prices, gp_types.ModelPrice) else None,
            )
        return None

    def _fast_rates(self, model_price: gp_types.ModelPrice) -> _Rates | None:
        entry = self._rates.get(id(model_price))
        if entry is not None and entry[0] is model_price:
            return entry[1]
        rates = _plain_rates(model_price)
        if len(self._rates) >= _MEMO_MAX:
            self._rates.clear()
        self._rates[id(model_price)] = (model_price, rates)
        return rates


def _plain_rates(model_price: gp_types.ModelPrice) -> _Rates | None:
    """The four token rates, or None when genai-prices must do the arithmetic."""
    values: dict[str, Any] = {k: v for k, v in vars(model_price).items() if v is not None}
    if "requests_kcount" in values:
        return None  # a per-request fee: leave it to genai-prices
    picked = {k: values.get(k) for k in _FAST_KEYS}
    if not all(v is None or isinstance(v, _Rate) for v in picked.values()):
        return None
    base = picked["input_mtok"]
    if base is None:
        return None  # priced per modality only: leave it to genai-prices
    output = picked["output_mtok"]
    read = picked["cache_read_mtok"]
    write = picked["cache_write_mtok"]
    r_in: _Rate = base
    r_out: _Rate = Decimal(0) if output is None else output
    r_read: _Rate = base if read is None else read
    r_write: _Rate = base if write is None else write
    flat = None
    if (
        isinstance(r_in, Decimal)
        and isinstance(r_out, Decimal)
        and isinstance(r_read, Decimal)
        and isinstance(r_write, Decimal)
    ):
        flat = (r_in, r_out, r_read, r_write)
    return _Rates(input=r_in, output=r_out, cache_read=r_read, cache_write=r_write, flat=flat)


def _cost(rates: _Rates, inp: int, out: int, read: int, write: int) -> Decimal:
    flat = rates.flat
    if flat is None:
        flat = (
            _tier(rates.input, inp),
            _tier(rates.output, inp),
            _tier(rates.cache_read, inp),
            _tier(rates.cache_write, inp),
        )
    total = (inp - read - write) * flat[0] + out * flat[1]
    if read:
        total += read * flat[2]
    if write:
        total += write * flat[3]
    return total / _PER_MTOK


def _tier(rate: _Rate, input_tokens: int) -> Decimal:
    """The rate in force: the highest tier whose start the input count exceeds."""
    if isinstance(rate, Decimal):
        return rate
    for tier in reversed(rate.tiers):
        if input_tokens > tier.start:
            return tier.price
    return rate.base


def _clamped(usage: Usage) -> Usage:
    """Usage with counts that genai-prices accepts (cache within input, none negative)."""
    inp = max(usage.input_tokens, 0)
    read = min(max(usage.cache_read_tokens, 0), inp)
    write = min(max(usage.cache_write_tokens, 0), inp - read)
    out = max(usage.output_tokens, 0)
    if (inp, read, write, out) == (
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.output_tokens,
    ):
        return usage
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=usage.reasoning_tokens,
        source=usage.source,
        provider_cost_usd=usage.provider_cost_usd,
    )


def _gp_usage(usage: Usage) -> genai_prices.Usage:
    # Reasoning is not passed: it is part of output_tokens, and pricing it as a
    # separate unit would only matter for the rare model that bills it apart.
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def _datetime(at_ns: int) -> datetime:
    seconds, rest_ns = divmod(max(at_ns, 0), 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest_ns // 1000)
