"""The ``lumen-sniff`` command group. Subcommands live in their own modules."""

from __future__ import annotations

import importlib

import click

from lumen_sniff import __version__

__all__ = ["main"]

# name → (module, attribute). Modules are imported only when their command runs:
# `replay` should not pay for httpx, and a missing optional backend (bcc, scapy)
# should only break the command that needs it.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("lumen_sniff.cli.run", "run"),
    "replay": ("lumen_sniff.cli.replay", "replay"),
    "top": ("lumen_sniff.cli.top", "top"),
    "report": ("lumen_sniff.cli.report", "report"),
    "events": ("lumen_sniff.cli.report", "events"),
    "lap": ("lumen_sniff.cli.report", "lap"),
    "pricing": ("lumen_sniff.cli.pricing", "pricing"),
    "doctor": ("lumen_sniff.cli.doctor", "doctor"),
    "warm": ("lumen_sniff.cli.warm", "warm"),
    "install-service": ("lumen_sniff.cli.service", "install_service"),
    "budgets": ("lumen_sniff.cli.budgets", "budgets"),
    "block": ("lumen_sniff.cli.budgets", "block"),
    "unblock": ("lumen_sniff.cli.budgets", "unblock"),
    "resume": ("lumen_sniff.cli.budgets", "resume"),
    "alerts": ("lumen_sniff.cli.budgets", "alerts"),
}

_HELP = {
    "run": "Run the daemon: capture, store and API, until SIGTERM.",
    "replay": "Process a pcap/pcapng file (optionally decrypting TLS) offline.",
    "top": "Live view: requests/min, $/hour, tokens/s, top models and processes.",
    "report": "Cost and token totals for a period, by model, process, key, tenant…",
    "events": "The latest usage events, newest first.",
    "lap": "Start a named lap (ending the previous one), or list laps.",
    "pricing": "Show USD per million tokens for a model and where the price comes from.",
    "doctor": "Check kernel, BTF, headers, bcc, BPF load, uprobe attach, TLS libraries.",
    "warm": "Compile the BPF programs into the object cache (make setup runs it), then exit.",
    "install-service": "Install and enable the systemd unit.",
    "budgets": "Budgets: list, add, remove, reset.",
    "block": "Kill switch: refuse a service's new LLM connections and close its open ones.",
    "unblock": "Lift a manual block.",
    "resume": "Continue the processes a pause budget stopped.",
    "alerts": "Alerts: send a test alert, list recent ones.",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, _HELP[name]) for name in _COMMANDS])


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="lumen-sniff")
def main() -> None:
    """Passive LLM API usage and cost monitor (eBPF on TLS libraries)."""
