"""``lumen-sniff top``: an htop-like live view of LLM spend, read from the API.

Rates are computed from the last few minutes of events (``/api/summary`` over a
sliding window), so the view needs nothing but the public API.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from lumen_sniff.cli.budgettable import budget_table
from lumen_sniff.cli.client import ApiClient, api_options
from lumen_sniff.cli.report import money

__all__ = ["render", "top"]

_WINDOW_MIN = 5


def render(
    summary: dict[str, Any],
    by_model: dict[str, Any],
    by_service: dict[str, Any],
    latest: list[dict[str, Any]],
    window_min: int = _WINDOW_MIN,
    unseen: list[dict[str, Any]] | None = None,
    budgets: list[dict[str, Any]] | None = None,
) -> Group:
    """Build the screen from API answers (pure, so it can be tested)."""
    minutes = float(window_min)
    tokens = summary["input_tokens"] + summary["output_tokens"]
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[bold]{summary['requests'] / minutes:.1f}[/] req/min",
        f"[bold]{money(summary['cost_usd'] * 60 / minutes)}[/]/hour",
        f"[bold]{tokens / (minutes * 60):,.0f}[/] tokens/s",
        f"[bold]{summary['errors']}[/] errors",
        f"[yellow]{summary['unpriced_requests']} unpriced[/]",
        f"last {window_min} min",
    )
    parts: list[Any] = [Panel(head, title="lumen-sniff top")]
    if budgets:
        parts.append(budget_table(budgets))
    parts += [_ranking("model", by_model), _ranking("service", by_service), _latest(latest)]
    if unseen:
        parts.append(_unseen(unseen))
    return Group(*parts)


def _unseen(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        "service",
        "process",
        "host",
        "conns",
        "sent",
        "received",
        "reason",
        expand=True,
        title="[red]unseen: TLS to LLM hosts that lumen-sniff cannot read[/]",
    )
    for r in rows[:8]:
        table.add_row(
            str(r.get("service") or "-"),
            str(r["process"]),
            str(r["host"]),
            str(r["connections"]),
            f"{r['bytes_sent']:,}",
            f"{r['bytes_received']:,}",
            str(r["reason"]),
        )
    return table


def _ranking(name: str, usage: dict[str, Any]) -> Table:
    rows = []
    for series in usage["series"]:
        requests = sum(p["requests"] for p in series["points"])
        cost = sum(p["cost_usd"] or 0 for p in series["points"])
        toks = sum(p["input_tokens"] + p["output_tokens"] for p in series["points"])
        rows.append((cost, requests, toks, str(series["group"])))
    table = Table(f"top {name}s", "requests", "tokens", "cost", expand=True)
    for cost, requests, toks, group in sorted(rows, reverse=True)[:8]:
        table.add_row(group, str(requests), f"{toks:,}", money(cost))
    return table


def _latest(latest: list[dict[str, Any]]) -> Table:
    table = Table(
        "time",
        "service",
        "model",
        "status",
        "in",
        "out",
        "ms",
        "cost",
        expand=True,
        title="latest calls",
    )
    for e in latest:
        table.add_row(
            e["started_at"][11:19],
            str(e.get("service") or e["process"] or "-"),
            str(e["model"] or "-"),
            str(e["status"]),
            f"{e['input_tokens']:,}",
            f"{e['output_tokens']:,}",
            f"{e['duration_ms']:.0f}" if e["duration_ms"] is not None else "-",
            money(e["cost_usd"]),
        )
    return table


def _budgets(api: ApiClient) -> list[dict[str, Any]]:
    try:
        budgets: list[dict[str, Any]] = api.get("/api/budgets")["budgets"]
    except click.ClickException:  # a daemon without budgets (503)
        return []
    return budgets


@click.command()
@click.option("--interval", type=click.FloatRange(0.2, 60), default=2.0, show_default=True)
@click.option("--once", is_flag=True, help="Print one screen and exit.")
@api_options
def top(api: ApiClient, interval: float, once: bool) -> None:
    """Live view: requests/min, $/hour, tokens/s, top models and services, latest calls."""

    def screen() -> Group:
        since = f"{_WINDOW_MIN}m"
        return render(
            api.get("/api/summary", since=since),
            api.get("/api/usage", group_by="model", bucket="hour", since=since),
            api.get("/api/usage", group_by="service", bucket="hour", since=since),
            api.get("/api/events", limit=15)["events"],
            unseen=api.get("/api/status").get("unseen", []),
            budgets=_budgets(api),
        )

    if once:
        from rich.console import Console

        Console().print(screen())
        return
    with Live(screen(), refresh_per_second=4, screen=True) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(screen())
        except KeyboardInterrupt:
            pass
