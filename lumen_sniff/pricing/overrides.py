"""User price overrides: USD per million tokens for models genai-prices lacks.

An override prices usage in the normalised convention (see
:class:`lumen_sniff.model.Usage`): ``input_tokens`` already includes cache reads
and writes, so the uncached part is ``input - cache_read - cache_write`` and
each part is billed at its own rate. Cache rates default to the input rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from lumen_sniff.model import Usage

__all__ = ["ModelPrice", "PriceOverrideLike", "find_override", "overrides_from"]

_PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """One model's user price, in USD per million tokens."""

    input_mtok: Decimal
    """Uncached input price."""
    output_mtok: Decimal
    """Output price (reasoning included)."""
    cache_read_mtok: Decimal | None = None
    """Cache read price; None means the input price."""
    cache_write_mtok: Decimal | None = None
    """Cache write price; None means the input price."""
    provider: str | None = None
    """Only for this provider; None for any provider."""

    def cost_usd(self, usage: Usage) -> Decimal:
        """Price ``usage`` (normalised convention) at these rates.

        Args:
            usage: Token counts; cache counts are subsets of ``input_tokens``.

        Returns:
            The cost in USD, exact (Decimal arithmetic, no rounding).
        """
        cache_read = max(usage.cache_read_tokens, 0)
        cache_write = max(usage.cache_write_tokens, 0)
        # Clamped: a provider that reports more cache than input must not make
        # the uncached part negative (that would give a discount, not a cost).
        uncached = max(usage.input_tokens - cache_read - cache_write, 0)
        read_rate = self.input_mtok if self.cache_read_mtok is None else self.cache_read_mtok
        write_rate = self.input_mtok if self.cache_write_mtok is None else self.cache_write_mtok
        total = (
            uncached * self.input_mtok
            + cache_read * read_rate
            + cache_write * write_rate
            + max(usage.output_tokens, 0) * self.output_mtok
        )
        return total / _PER_MTOK


class PriceOverrideLike(Protocol):
    """What :func:`overrides_from` reads (``lumen_sniff.config.PriceOverride`` fits)."""

    @property
    def model(self) -> str:
        """Model name."""

    @property
    def provider(self) -> str | None:
        """Provider, or None for any."""

    @property
    def input_mtok(self) -> Decimal:
        """Uncached input price."""

    @property
    def output_mtok(self) -> Decimal:
        """Output price."""

    @property
    def cache_read_mtok(self) -> Decimal | None:
        """Cache read price."""

    @property
    def cache_write_mtok(self) -> Decimal | None:
        """Cache write price."""


def overrides_from(entries: Iterable[PriceOverrideLike]) -> dict[str, ModelPrice]:
    """Turn config entries into the ``{model: ModelPrice}`` mapping the Pricer takes.

    Args:
        entries: Config price entries (model, provider and per-million rates).

    Returns:
        One :class:`ModelPrice` per model name, keyed by the lower-cased name.
    """
    return {
        entry.model.lower(): ModelPrice(
            input_mtok=entry.input_mtok,
            output_mtok=entry.output_mtok,
            cache_read_mtok=entry.cache_read_mtok,
            cache_write_mtok=entry.cache_write_mtok,
            provider=entry.provider,
        )
        for entry in entries
    }


def find_override(
    overrides: Mapping[str, ModelPrice], provider: str, model: str
) -> ModelPrice | None:
    """The override for ``model`` (case-insensitive) that applies to ``provider``.

    Args:
        overrides: ``{model: ModelPrice}``, keys lower-cased.
        provider: Provider of the call.
        model: Model of the call.

    Returns:
        The matching price, or None.
    """
    price = overrides.get(model) or overrides.get(model.lower())
    if price is None or (price.provider is not None and price.provider != provider):
        return None
    return price
