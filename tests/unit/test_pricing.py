"""Pricing: genai-prices adapter (fast path checked against calc_price) and overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices.data_snapshot import get_snapshot

from lumen_sniff.model import Usage, UsageSource
from lumen_sniff.pricing.overrides import ModelPrice, overrides_from
from lumen_sniff.pricing.prices import GENAI_PRICES_SOURCE, OVERRIDE_SOURCE, Pricer

M = Decimal(1_000_000)


def _ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000_000  # type: ignore[misc]


AT_2025 = _ns(2025, 4, 18, 15, 37, 14)


def _usage(inp: int = 0, out: int = 0, read: int = 0, write: int = 0, reason: int = 0) -> Usage:
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=reason,
        source=UsageSource.REPORTED,
    )


def test_source_names_the_package_version() -> None:
    assert f"genai-prices {genai_prices.__version__}" == GENAI_PRICES_SOURCE
    assert GENAI_PRICES_SOURCE.startswith("genai-prices 0.2.3")


def test_openai_cached_tokens_billed_once_at_the_cache_rate() -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok.
    result = Pricer().price("openai", "gpt-4o-mini-2024-07-18", _usage(1149, 353, 1024), AT_2025)
    expected = (125 * Decimal("0.15") + 1024 * Decimal("0.075") + 353 * Decimal("0.6")) / M
    assert result.cost_usd == expected == Decimal("0.00030735")
    assert result.source == GENAI_PRICES_SOURCE


def test_anthropic_cache_write_and_read_rates() -> None:
    # claude-sonnet-4: $3 input, $3.75 cache write, $0.30 cache read, $15 output.
    pricer = Pricer()
    model = "claude-sonnet-4-20250514"
    write = pricer.price("anthropic", model, _usage(4180, 12, 0, 4167), AT_2025)
    assert write.cost_usd == (13 * 3 + 4167 * Decimal("3.75") + 12 * 15) / M
    read = pricer.price("anthropic", model, _usage(4180, 12, 4167), AT_2025)
    assert read.cost_usd == (13 * 3 + 4167 * Decimal("0.3") + 12 * 15) / M


def test_reasoning_is_priced_as_output_not_twice() -> None:
    # gpt-5: $1.25 input, $10 output; 64 reasoning tokens are inside the 75 output.
    result = Pricer().price("openai", "gpt-5", _usage(20, 75, reason=64), AT_2025)
    assert result.cost_usd == (20 * Decimal("1.25") + 75 * 10) / M


def test_gemini_tiered_price_above_200k_input() -> None:
    # gemini-2.5-pro: $1.25/$10 up to 200k input tokens, $2.50/$15 above.
    pricer = Pricer()
    small = pricer.price("google", "gemini-2.5-pro", _usage(1000, 100), AT_2025)
    assert small.cost_usd == (1000 * Decimal("1.25") + 100 * 10) / M
    big = pricer.price("google", "gemini-2.5-pro", _usage(250_000, 100), AT_2025)
    assert big.cost_usd == (250_000 * Decimal("2.5") + 100 * 15) / M


def test_dated_price_follows_the_request_time() -> None:
    # o3 went from $10/$40 to $2/$8 on 2025-06-10.
    pricer = Pricer()
    before = pricer.price("openai", "o3", _usage(1000, 1000), _ns(2025, 6, 9, 12))
    after = pricer.price("openai", "o3", _usage(1000, 1000), _ns(2025, 6, 11, 12))
    assert before.cost_usd == (1000 * 10 + 1000 * 40) / M
    assert after.cost_usd == (1000 * 2 + 1000 * 8) / M


def test_time_of_day_price() -> None:
    # deepseek-chat: $0.27/$1.10 from 00:30 to 16:30 UTC, $0.135/$0.55 off-peak.
    pricer = Pricer()
    peak = pricer.price("deepseek", "deepseek-chat", _usage(1000, 1000), _ns(2025, 6, 1, 12))
    off = pricer.price("deepseek", "deepseek-chat", _usage(1000, 1000), _ns(2025, 6, 1, 20))
    assert peak.cost_usd == (1000 * Decimal("0.27") + 1000 * Decimal("1.1")) / M
    assert off.cost_usd == (1000 * Decimal("0.135") + 1000 * Decimal("0.55")) / M


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "no-such-model-xyz"),
        ("anthropic", "claude-x"),
        ("vllm", "my-finetune"),
        ("openai", None),
        ("openai", ""),
    ],
)
def test_unknown_model_is_unpriced_never_zero(provider: str, model: str | None) -> None:
    result = Pricer().price(provider, model, _usage(100, 100), AT_2025)
    assert result.cost_usd is None
    assert result.source is None


def test_local_servers_do_not_borrow_cloud_prices() -> None:
    # "deepseek-chat" has an API price, but on a local Ollama it costs no tokens.
    assert Pricer().price("ollama", "deepseek-chat", _usage(100, 100), AT_2025).cost_usd is None


def test_provider_aliases_and_model_fallback() -> None:
    pricer = Pricer()
    gemini = pricer.price("gemini", "gemini-2.5-flash", _usage(1000, 10), AT_2025)
    assert gemini.cost_usd == (1000 * Decimal("0.3") + 10 * Decimal("2.5")) / M
    # An OpenAI-shaped gateway serving a Claude model is priced as that model.
    relay = pricer.price("openai", "claude-sonnet-4-20250514", _usage(1000, 10), AT_2025)
    assert relay.cost_usd == (1000 * 3 + 10 * 15) / M
    # A provider genai-prices does not know: matched by model name.
    other = pricer.price("some-relay", "gpt-4o-mini", _usage(1000, 10), AT_2025)
    assert other.cost_usd == (1000 * Decimal("0.15") + 10 * Decimal("0.6")) / M


def test_zero_usage_of_a_known_model_costs_zero() -> None:
    result = Pricer().price("openai", "gpt-4o-mini", Usage(), AT_2025)
    assert result.cost_usd == Decimal(0)
    assert result.source == GENAI_PRICES_SOURCE


def test_cache_larger_than_input_is_clamped_not_an_error() -> None:
    result = Pricer().price("openai", "gpt-4o-mini", _usage(10, 0, read=50), AT_2025)
    assert result.cost_usd == 10 * Decimal("0.075") / M


# ------------------------------------------------------------------- overrides


def test_override_prices_an_unknown_model_in_the_normalised_convention() -> None:
    price = ModelPrice(
        input_mtok=Decimal(3),
        output_mtok=Decimal(12),
        cache_read_mtok=Decimal("1.5"),
        cache_write_mtok=Decimal("3.75"),
    )
    pricer = Pricer({"My-Finetune": price})
    result = pricer.price("openai", "my-finetune", _usage(1000, 200, 300, 100), AT_2025)
    expected = 600 * 3 + 300 * Decimal("1.5") + 100 * Decimal("3.75") + 200 * 12
    assert result.cost_usd == expected / M
    assert result.source == OVERRIDE_SOURCE


def test_override_cache_prices_default_to_input() -> None:
    pricer = Pricer({"m": ModelPrice(input_mtok=Decimal(2), output_mtok=Decimal(8))})
    result = pricer.price("openai", "m", _usage(1000, 10, 400, 100), AT_2025)
    assert result.cost_usd == (1000 * 2 + 10 * 8) / M


def test_override_wins_over_genai_prices_and_respects_its_provider() -> None:
    price = ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(1), provider="azure")
    pricer = Pricer({"gpt-4o-mini": price})
    azure = pricer.price("azure", "gpt-4o-mini", _usage(1000, 1000), AT_2025)
    assert (azure.cost_usd, azure.source) == (Decimal(2000) / M, OVERRIDE_SOURCE)
    openai = pricer.price("openai", "gpt-4o-mini", _usage(1000, 1000), AT_2025)
    assert openai.cost_usd == (1000 * Decimal("0.15") + 1000 * Decimal("0.6")) / M
    assert openai.source == GENAI_PRICES_SOURCE


def test_overrides_from_config_entries() -> None:
    from lumen_sniff.config import PriceOverride

    entry = PriceOverride(
        model="My-Model",
        provider="openai",
        input_mtok=Decimal(3),
        output_mtok=Decimal(12),
        cache_read_mtok=Decimal("1.5"),
        cache_write_mtok=Decimal(3),
    )
    assert overrides_from([entry]) == {
        "my-model": ModelPrice(
            input_mtok=Decimal(3),
            output_mtok=Decimal(12),
            cache_read_mtok=Decimal("1.5"),
            cache_write_mtok=Decimal(3),
            provider="openai",
        )
    }


# ------------------------------------------------- fast path against calc_price

_USAGES = (
    _usage(1149, 353, 1024),
    _usage(4180, 12, 0, 4167),
    _usage(250_000, 1000, 120_000, 5000),
    _usage(7, 0),
)
_WHEN = (_ns(2025, 1, 1, 3), _ns(2026, 11, 23, 13))


def test_fast_path_agrees_with_calc_price_for_every_model() -> None:
    pricer = Pricer()
    compared = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            for usage in _USAGES:
                for at_ns in _WHEN:
                    when = datetime.fromtimestamp(at_ns // 1_000_000_000, UTC)
                    try:
                        calc = genai_prices.calc_price(
                            genai_prices.Usage(
                                input_tokens=usage.input_tokens,
                                output_tokens=usage.output_tokens,
                                cache_read_tokens=usage.cache_read_tokens,
                                cache_write_tokens=usage.cache_write_tokens,
                            ),
                            model.id,
                            provider_id=provider.id,
                            genai_request_timestamp=when,
                        )
                    except (LookupError, ValueError):
                        continue
                    got = pricer.price(provider.id, model.id, usage, at_ns)
                    assert got.cost_usd == calc.total_price, (provider.id, model.id, usage)
                    compared += 1
    assert compared > 5000
