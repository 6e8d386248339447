"""The ``lumen-sniff`` command group. Subcommands live in their own modules."""

from __future__ import annotations

import importlib

import click

from lumen_sniff import __version__

__all__ = ["main"]

# (module, attribute) of each subcommand; imported lazily so that a missing
# optional backend (bcc, scapy) only breaks the command that needs it.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("lumen_sniff.cli.run", "run"),
    ("lumen_sniff.cli.replay", "replay"),
    ("lumen_sniff.cli.top", "top"),
    ("lumen_sniff.cli.report", "report"),
    ("lumen_sniff.cli.report", "events"),
    ("lumen_sniff.cli.report", "lap"),
    ("lumen_sniff.cli.pricing", "pricing"),
    ("lumen_sniff.cli.doctor", "doctor"),
    ("lumen_sniff.cli.service", "install_service"),
)


@click.group()
@click.version_option(__version__, prog_name="lumen-sniff")
def main() -> None:
    """Passive LLM API usage and cost monitor (eBPF on TLS libraries)."""


for _module, _attr in _COMMANDS:
    try:
        main.add_command(getattr(importlib.import_module(_module), _attr))
    except ModuleNotFoundError as exc:  # pragma: no cover - only while modules land
        if exc.name != _module:
            raise
