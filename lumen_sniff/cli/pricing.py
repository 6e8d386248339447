"""``lumen-sniff pricing MODEL``: the price events of MODEL would get (no daemon needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from lumen_sniff.config import DEFAULT_CONFIG_PATH, load_settings
from lumen_sniff.errors import LumenError

__all__ = ["pricing"]


@click.command()
@click.argument("model")
@click.option("--provider", default="", help="openai, anthropic, google, … (default: any).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Config whose [prices] overrides apply.",
)
@click.option("--json", "as_json", is_flag=True)
def pricing(model: str, provider: str, config_path: Path | None, as_json: bool) -> None:
    """Show USD per million tokens for MODEL and where the price comes from."""
    from lumen_sniff.pricing.overrides import overrides_from
    from lumen_sniff.pricing.prices import Pricer
    from lumen_sniff.pricing.quote import quote

    try:
        settings = load_settings(config_path or DEFAULT_CONFIG_PATH, required=bool(config_path))
    except LumenError as exc:
        raise click.ClickException(str(exc)) from exc
    result = quote(Pricer(overrides_from(settings.prices)), provider, model, time.time_ns())
    rates = {k: float(v) for k, v in (result.per_million_usd or {}).items()}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": model,
                    "provider": provider or None,
                    "priced": result.priced,
                    "source": result.source,
                    "per_million_usd": rates or None,
                }
            )
        )
        return
    if not result.priced:
        click.echo(
            f'{model}: unpriced — events get cost_usd = null (add [prices."{model}"] '
            "to the config to price it)"
        )
        raise SystemExit(1)
    click.echo(f"{model} ({result.source}), USD per million tokens:")
    for kind, rate in rates.items():
        click.echo(f"  {kind:<12} {rate:>10.4f}")
