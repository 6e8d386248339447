"""``lumen-sniff budgets|block|unblock|resume|alerts``: budget commands, through the API."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from lumen_sniff.cli.budgettable import budget_table
from lumen_sniff.cli.client import ApiClient, api_options

__all__ = ["alerts", "block", "budgets", "resume", "unblock"]


@click.group()
def budgets() -> None:
    """Budgets: list, add, remove, reset."""


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@api_options
def list_budgets(api: ApiClient, as_json: bool) -> None:
    """Every budget's state, the kill switches and the latest blocks and lifts."""
    data = api.get("/api/budgets")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    console.print(budget_table(data["budgets"]))
    for key, reason in data["manual_blocks"].items():
        console.print(f"[bold red]manual block[/] {key}: {reason}")
    enforcement = data["enforcement"]
    if enforcement.get("error"):
        console.print(f"[yellow]blocking:[/] {enforcement['error']}")
    for row in data["log"][:10]:
        verb = "applied" if row["active"] else "lifted"
        console.print(f"{row['at'][:19]} {row['budget']}: {row['action']} {verb}: {row['reason']}")


@budgets.command("add")
@click.option("--name", required=True)
@click.option(
    "--scope",
    default="global",
    show_default=True,
    help="global provider model service unit container api_key_id tenant",
)
@click.option("--match", default="", help="The scope's value (service name, model…).")
@click.option("--period", required=True, help="hour day week month, or rolling: 10m 24h 7d")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--limit-usd", required=True)
@click.option("--limit-tokens", type=int, default=None)
@click.option("--limit-requests", type=int, default=None)
@click.option("--thresholds", default="50,80,100", show_default=True)
@click.option(
    "--action", type=click.Choice(["alert", "block", "pause"]), default="alert", show_default=True
)
@api_options
def add(api: ApiClient, thresholds: str, **fields: Any) -> None:
    """Create (or replace) a budget; it is stored and survives restarts."""
    try:
        levels = [int(t) for t in thresholds.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter("comma-separated percentages", param_hint="--thresholds") from None
    body = {k: v for k, v in fields.items() if v not in (None, "")}
    body["thresholds"] = levels
    made = api.post("/api/budgets", body)
    click.echo(f"budget {made['name']} saved")


@budgets.command("remove")
@click.argument("name")
@api_options
def remove(api: ApiClient, name: str) -> None:
    """Delete a budget made through the API (lifts its block or pause)."""
    api.delete(f"/api/budgets/{name}")
    click.echo(f"budget {name} removed")


@budgets.command("reset")
@click.argument("name")
@api_options
def reset(api: ApiClient, name: str) -> None:
    """Count from zero from now on (lifts its block or pause)."""
    api.post(f"/api/budgets/{name}/reset", {})
    click.echo(f"budget {name} reset")


@click.command()
@click.option("--service", required=True, help="Process name of the service.")
@click.option("--reason", default="manual kill switch", show_default=True)
@api_options
def block(api: ApiClient, service: str, reason: str) -> None:
    """Kill switch: refuse a service's new LLM connections and close its open ones."""
    api.post("/api/block", {"service": service, "reason": reason})
    click.echo(f"{service}: blocked")


@click.command()
@click.option("--service", required=True, help="Process name of the service.")
@api_options
def unblock(api: ApiClient, service: str) -> None:
    """Lift a manual block."""
    api.post("/api/unblock", {"service": service})
    click.echo(f"{service}: unblocked")


@click.command()
@click.argument("budget")
@api_options
def resume(api: ApiClient, budget: str) -> None:
    """Continue the processes a pause budget stopped (until its window resets)."""
    api.post(f"/api/budgets/{budget}/resume", {})
    click.echo(f"{budget}: resumed")


@click.group()
def alerts() -> None:
    """Alerts: send a test alert, list recent ones."""


@alerts.command("test")
@api_options
def test(api: ApiClient) -> None:
    """Send a test alert to the log and every configured webhook."""
    errors = api.post("/api/alerts/test", {})["errors"]
    for err in errors:
        click.echo(f"failed: {err}", err=True)
    if errors:
        raise SystemExit(1)
    click.echo("test alert sent")


@alerts.command("list")
@api_options
def list_alerts(api: ApiClient) -> None:
    """The latest alerts and their deliveries."""
    for a in api.get("/api/alerts")["alerts"]:
        click.echo(f"{a['created_at'][:19]} {a['kind']:<14} {a['message']}  [{a['deliveries']}]")
