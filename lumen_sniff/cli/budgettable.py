"""The budgets table shown by ``budgets list`` and ``top`` (pure: API answer → rich Table)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from lumen_sniff.cli.report import money

__all__ = ["budget_table"]

_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "exceeded": "red",
    "blocked": "bold red",
    "paused": "bold magenta",
}


def budget_table(budgets: list[dict[str, Any]]) -> Table:
    """One row per budget: scope, period, spent/limit, percent, state, reset, forecast."""
    table = Table(
        "budget",
        "scope",
        "period",
        "spent",
        "limit",
        "%",
        "state",
        "next reset",
        "forecast",
        "overshoot",
        title="budgets",
        expand=True,
    )
    for b in budgets:
        scope = b["scope"] + (f"={b['match']}" if b["match"] else "")
        style = _STYLE.get(b["state"], "")
        flags = f" +{b['unpriced_requests']} unpriced" if b["unpriced_requests"] else ""
        table.add_row(
            b["name"],
            scope,
            b["period"],
            money(b["spent_usd"]) + flags,
            money(b["limit_usd"]),
            f"{b['percent']:.0f}",
            f"[{style}]{b['state']}[/]" if style else b["state"],
            (b["next_reset"] or "-")[:19].replace("T", " "),
            money(b["forecast_usd"]),
            money(b["overshoot_usd"]),
        )
    return table
