"""Budgets in ``top`` and ``budgets list``: the table built from /api/budgets."""

from __future__ import annotations

from rich.console import Console

from lumen_sniff.cli.top import render


def test_top_shows_budgets() -> None:
    summary = {
        "requests": 0,
        "errors": 0,
        "cost_usd": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "unpriced_requests": 0,
    }
    usage: dict[str, list[object]] = {"series": []}
    budget = {
        "name": "agents",
        "scope": "service",
        "match": "my-agent",
        "period": "day",
        "spent_usd": 12.5,
        "limit_usd": 10.0,
        "percent": 125.0,
        "state": "blocked",
        "next_reset": "2026-12-04T00:00:00.000000Z",
        "forecast_usd": 30.0,
        "overshoot_usd": 2.5,
        "unpriced_requests": 3,
    }
    console = Console(width=160, record=True)
    console.print(render(summary, usage, usage, [], budgets=[budget]))
    text = console.export_text()
    assert "agents" in text and "service=my-agent" in text and "blocked" in text
    assert "+3 unpriced" in text and "2026-12-04 00:00:00" in text and "125" in text
