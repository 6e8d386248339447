"""``report``, ``events`` and ``lap``: what the daemon has seen, from its API."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lumen_sniff.cli.client import ApiClient, api_options

__all__ = ["events", "lap", "report"]

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def money(value: float | None) -> str:
    """Format a USD amount; None (unpriced) is shown as such, never as $0."""
    if value is None:
        return "unpriced"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


@click.command()
@click.option("--since", default="7d", show_default=True, help="ISO time or 30m / 24h / 7d.")
@click.option("--until", default=None, help="ISO time or relative; default now.")
@click.option(
    "--group-by",
    type=click.Choice(
        ["model", "provider", "process", "api_key_id", "tenant", "container", "service"]
    ),
    default="model",
    show_default=True,
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True
)
@api_options
def report(api: ApiClient, since: str, until: str | None, group_by: str, fmt: str) -> None:
    """Cost and token totals for a period, broken down by one dimension."""
    if fmt == "csv":
        click.echo(api.get_text("/api/export.csv", since=since, until=until), nl=False)
        return
    summary = api.get("/api/summary", since=since, until=until)
    usage = api.get("/api/usage", group_by=group_by, bucket="day", since=since, until=until)
    groups = [_total_group(series) for series in usage["series"]]
    groups.sort(key=lambda g: g["cost_usd"], reverse=True)
    if fmt == "json":
        click.echo(json.dumps({"summary": summary, "group_by": group_by, "groups": groups}))
        return
    console = Console()
    console.print(
        f"[bold]{summary['requests']}[/] requests, [bold]{summary['errors']}[/] errors, "
        f"[bold]{money(summary['cost_usd'])}[/] priced cost since {since}"
    )
    if summary["unpriced_requests"] or summary["estimated_requests"]:
        console.print(
            f"[yellow]{summary['unpriced_requests']} unpriced request(s) not in the cost; "
            f"{summary['estimated_requests']} with estimated usage[/]"
        )
    table = Table(group_by, "requests", "cost", *(f.removesuffix("_tokens") for f in _TOKEN_FIELDS))
    for g in groups:
        table.add_row(
            str(g["group"]),
            str(g["requests"]),
            money(g["cost_usd"]),
            *(f"{g[f]:,}" for f in _TOKEN_FIELDS),
        )
    console.print(table)


def _total_group(series: dict[str, Any]) -> dict[str, Any]:
    total: dict[str, Any] = {"group": series["group"], "requests": 0, "cost_usd": 0.0}
    total.update(dict.fromkeys(_TOKEN_FIELDS, 0))
    for point in series["points"]:
        for key in ("requests", "cost_usd", *_TOKEN_FIELDS):
            total[key] += point.get(key) or 0
    return total


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--since", default=None, help="ISO time or 30m / 24h / 7d.")
@click.option("--provider", default=None)
@click.option("--model", default=None)
@click.option("--process", default=None)
@click.option("--service", default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@api_options
def events(
    api: ApiClient,
    limit: int,
    since: str | None,
    provider: str | None,
    model: str | None,
    process: str | None,
    service: str | None,
    as_json: bool,
) -> None:
    """The latest usage events, newest first."""
    rows = api.get(
        "/api/events",
        limit=limit,
        since=since,
        provider=provider,
        model=model,
        process=process,
        service=service,
    )["events"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(
        "time", "service", "process", "provider", "model", "status", "in", "out", "cost", "src"
    )
    for e in rows:
        table.add_row(
            e["started_at"][11:19],
            str(e.get("service") or "-"),
            f"{e['process']}[{e['pid']}]" if e["pid"] else str(e["process"] or "-"),
            e["provider"],
            str(e["model"] or "-"),
            str(e["status"]),
            f"{e['input_tokens']:,}",
            f"{e['output_tokens']:,}",
            money(e["cost_usd"]),
            e["usage_source"],
        )
    Console().print(table)


@click.command()
@click.argument("name", required=False)
@api_options
def lap(api: ApiClient, name: str | None) -> None:
    """Start a lap named NAME (ending the previous one), or list laps."""
    if name:
        started = api.post("/api/laps", {"name": name})
        click.echo(f"lap {name!r} started at {started.get('started_at', 'now')}")
        return
    table = Table("lap", "started", "ended", "requests", "cost", "input", "output")
    for lp in api.get("/api/laps")["laps"]:
        table.add_row(
            lp["name"],
            lp["started_at"],
            lp["ended_at"] or "(running)",
            str(lp["requests"]),
            money(lp["cost_usd"]),
            f"{lp['input_tokens']:,}",
            f"{lp['output_tokens']:,}",
        )
    Console().print(table)
