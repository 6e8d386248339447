"""``lumen-sniff run``: the daemon in the foreground (systemd runs exactly this)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from lumen_sniff.config import DEFAULT_CONFIG_PATH, Settings, load_settings, parse_listen
from lumen_sniff.errors import LumenError

__all__ = ["run"]


def _setup_logging(verbose: bool) -> None:
    # journald adds its own timestamps; keep the line plain and greppable.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"TOML config (default {DEFAULT_CONFIG_PATH} if present).",
)
"""``--config``, shared by the commands that read the daemon's config file."""


@click.command()
@config_option
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path),
    default=None,
    help="SQLite database (default /var/lib/lumen-sniff/lumen.db).",
)
@click.option("--listen", default=None, help="API address HOST:PORT (default 127.0.0.1:7437).")
@click.option(
    "--capture",
    "mode",
    type=click.Choice(["auto", "bpf", "pcap"]),
    default=None,
    help="Capture backends (default auto: eBPF for TLS + pcap for plaintext ports).",
)
@click.option("--pid", "pids", type=int, multiple=True, help="Only these processes (repeat).")
@click.option("--comm", "comms", multiple=True, help="Only these process names (repeat).")
@click.option("--exe", "exes", multiple=True, help="Only these executables (repeat).")
@click.option("--iface", default=None, help="Interface for plaintext capture (default any).")
@click.option("--ports", default=None, help="Plaintext LLM ports, comma-separated.")
@click.option("--dump-bpf", is_flag=True, help="Print the BPF C source and cflags, then exit.")
@click.option("-v", "--verbose", is_flag=True)
def run(
    config_path: Path | None,
    db_path: Path | None,
    listen: str | None,
    mode: str | None,
    pids: tuple[int, ...],
    comms: tuple[str, ...],
    exes: tuple[str, ...],
    iface: str | None,
    ports: str | None,
    dump_bpf: bool,
    verbose: bool,
) -> None:
    """Run the daemon: capture, store and API, until SIGTERM."""
    _setup_logging(verbose)
    try:
        settings = load_settings(config_path or DEFAULT_CONFIG_PATH, required=bool(config_path))
        host, port = parse_listen(listen) if listen else (None, None)
        flags: dict[str, Any] = {
            "mode": mode,
            "pids": pids or None,
            "comms": comms or None,
            "exes": exes or None,
            "iface": iface,
            "ports": _ports(ports) if ports else None,
        }
        capture = replace(settings.capture, **{k: v for k, v in flags.items() if v is not None})
        settings = settings.with_overrides(
            listen_host=host, listen_port=port, db_path=db_path, capture=capture
        )
        if dump_bpf:
            _dump_bpf(settings)
            return
        if os.geteuid() != 0 and settings.capture.mode != "pcap":
            raise click.ClickException(
                "eBPF capture needs root: run with sudo (or as a "
                "systemd service), or use --capture pcap"
            )
        from lumen_sniff.daemon import Daemon

        asyncio.run(Daemon(settings).serve())
    except LumenError as exc:
        raise click.ClickException(str(exc)) from exc


def _ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated port numbers, got {text!r}", param_hint="--ports"
        ) from None
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise click.BadParameter("ports must be 1-65535", param_hint="--ports")
    return ports


def _dump_bpf(settings: Settings) -> None:
    from lumen_sniff.capture.bpf.loader import BpfCapture
    from lumen_sniff.stagesettings import bpf_settings

    source, cflags = BpfCapture(bpf_settings(settings)).render_source()
    click.echo(f"// cflags: {' '.join(cflags)}")
    click.echo(source)
