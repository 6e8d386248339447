"""``lumen-sniff warm``: fill the caches a start reads, then exit (``make setup`` runs it).

The first start after an install, a kernel or a bcc change compiles the BPF
programs and has the kernel verify them (about 3.5 s to ready instead of 1.5 s).
This command does that work ahead of time, for the settings of the config file
the daemon will read, and byte-compiles the package, which a service under
``ProtectSystem=strict`` could never write itself. It attaches nothing.

It is idempotent, and it fails open: where eBPF is unavailable (no root, no bcc,
no headers, a refusing kernel) it says so and exits 0, so an install goes on; the
daemon then compiles at its first start, or runs ``--capture pcap``.
"""

from __future__ import annotations

import compileall
import os
import time
from pathlib import Path

import click

from lumen_sniff.cli.run import config_option
from lumen_sniff.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from lumen_sniff.errors import CaptureError, ConfigError

__all__ = ["warm"]

_PACKAGE = Path(__file__).resolve().parent.parent


@click.command()
@config_option
def warm(config_path: Path | None) -> None:
    """Compile the BPF programs into the object cache and byte-compile the package."""
    try:
        settings = load_settings(config_path or DEFAULT_CONFIG_PATH, required=bool(config_path))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    started = time.monotonic()
    compileall.compile_dir(_PACKAGE, quiet=1)
    click.echo(f"python bytecode: {_PACKAGE} compiled in {time.monotonic() - started:.1f} s")
    cache = settings.capture.bpf_cache_dir
    if settings.capture.mode == "pcap":
        click.echo('BPF object cache: not needed ([capture] mode = "pcap")')
    elif not cache:
        click.echo('BPF object cache: none configured ([capture] bpf_cache_dir = ""); skipped')
    elif os.geteuid() != 0:
        click.echo("BPF object cache: skipped, eBPF needs root (the first start will compile)")
    else:
        _warm_bpf(settings, Path(cache))


def _warm_bpf(settings: Settings, cache: Path) -> None:
    # Imported here: the rest of the command must work where bcc or libbpf is missing.
    from lumen_sniff.budgets.enforce import guard_request
    from lumen_sniff.capture.bpf.warm import warm_cache
    from lumen_sniff.stagesettings import bpf_settings

    try:
        warmed = warm_cache(bpf_settings(settings, exclude_pids=()), cache, guard_request())
    except (CaptureError, OSError, ImportError) as exc:
        click.echo(
            f"BPF object cache: not warmed, eBPF is unavailable here ({exc}); "
            "the daemon will compile at its first start (`lumen-sniff doctor` says more)"
        )
        return
    for item in warmed:
        state = "already cached" if item.cached else "compiled"
        click.echo(f"BPF object cache: {item.name} {state} ({item.seconds:.1f} s) in {cache}")
