"""Per-million-token prices of a model, as the pricer would apply them.

Derived by pricing small probe usages through :class:`Pricer.price`, so what is
shown (``/api/pricing``, ``lumen-sniff pricing``) is exactly what events get:
overrides, genai-prices' dated prices and cache rates all included.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from lumen_sniff.model import Usage, UsageSource

__all__ = ["PricerLike", "Quote", "quote"]

_PROBE_TOKENS = 1000
"""Tokens per probe: small enough to stay below any long-context tier edge."""

_PROBES = {
    "input": Usage(input_tokens=_PROBE_TOKENS, source=UsageSource.REPORTED),
    "output": Usage(output_tokens=_PROBE_TOKENS, source=UsageSource.REPORTED),
    "cache_read": Usage(
        input_tokens=_PROBE_TOKENS, cache_read_tokens=_PROBE_TOKENS, source=UsageSource.REPORTED
    ),
    "cache_write": Usage(
        input_tokens=_PROBE_TOKENS, cache_write_tokens=_PROBE_TOKENS, source=UsageSource.REPORTED
    ),
}


class PricerLike(Protocol):
    """What a quote needs of :class:`lumen_sniff.pricing.prices.Pricer`."""

    def price(self, provider: str, model: str | None, usage: Usage, at_ns: int) -> Any:
        """Return an object with ``cost_usd`` (Decimal | None) and ``source``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Quote:
    """The price a model would get."""

    priced: bool
    """False when nothing prices the model (events get cost_usd = null)."""
    source: str | None
    """What priced it ("genai-prices <version>", "override"), None if unpriced."""
    per_million_usd: dict[str, Decimal] | None
    """USD per million tokens for input, output, cache_read and cache_write."""


def quote(pricer: PricerLike, provider: str, model: str, at_ns: int) -> Quote:
    """Price one million tokens of each kind for ``model`` at ``at_ns``.

    Args:
        pricer: The pricer events use.
        provider: Our provider name, or "" to match by model alone.
        model: Model name.
        at_ns: The time prices apply at, UNIX nanoseconds.
    """
    rates: dict[str, Decimal] = {}
    source = None
    for kind, usage in _PROBES.items():
        result = pricer.price(provider, model, usage, at_ns)
        if result.cost_usd is None:
            return Quote(priced=False, source=None, per_million_usd=None)
        source = result.source
        rates[kind] = result.cost_usd * (1_000_000 // _PROBE_TOKENS)
    return Quote(priced=True, source=source, per_million_usd=rates)
