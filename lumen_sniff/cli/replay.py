"""``lumen-sniff replay``: a pcap/pcapng file through the daemon's pipeline.

stdout gets the events (``--json``: one JSON object per line, the API's shape)
or a summary table; stderr gets diagnostics (damage, undecryptable TLS
sessions, skipped frames). Exit status: 0 when the whole file was read, 1 when
it was damaged, unreadable, or the key log was unusable (events decoded before
the damage are still printed and stored).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lumen_sniff.errors import LumenError
from lumen_sniff.model import UsageEvent

if TYPE_CHECKING:
    from lumen_sniff.pipeline.pipeline import Pipeline

__all__ = ["REPLAY_SALT", "replay"]

REPLAY_SALT = b"lumen-sniff replay"
"""Key-fingerprint salt without --db: fingerprints compare across replays only."""
_STORE_BATCH = 5000
_PARALLEL_BYTES = 32 << 20
"""Captures larger than this are replayed by several processes by default."""


@click.command()
@click.argument("capture", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--keylog",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SSLKEYLOGFILE to decrypt TLS 1.2/1.3 sessions with (uses tshark).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON event per line.")
@click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also store the events in this database, as the daemon would.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML config for provider hosts, tenant headers and price overrides.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Worker processes; 0 picks one per CPU (at most 4) for captures over 32 MB.",
)
def replay(
    capture: Path,
    keylog: Path | None,
    as_json: bool,
    db_path: Path | None,
    config_path: Path | None,
    jobs: int,
) -> None:
    """Replay CAPTURE (pcap or pcapng) and report the LLM calls in it."""
    from lumen_sniff.capture.pcap.replay import replay_file

    events: list[UsageEvent] = []
    printer = _print_json if as_json else None

    def on_event(event: UsageEvent) -> None:
        if printer is not None:
            printer(event)
        if db_path is not None or not as_json:
            events.append(event)

    try:
        make_pipeline = _pipeline_factory(config_path, db_path)
        report = replay_file(
            capture, make_pipeline, on_event, keylog=keylog, jobs=jobs or _auto_jobs(capture)
        )
    except LumenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not as_json:
        _print_summary(events, report)
    for session in report.tls_missing_keys:
        click.echo(
            f"warning: TLS session {session.stream} "
            f"({_endpoint(session.client)} -> {_endpoint(session.server)}, "
            f"client random {session.client_random or 'unknown'}): "
            "no usable keys in the key log, not decrypted",
            err=True,
        )
    if db_path is not None:
        try:
            asyncio.run(_store(db_path, events))
        except LumenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    if report.error:
        click.echo(f"error: {report.error} ({report.events} events before the damage)", err=True)
        sys.exit(1)


def _auto_jobs(capture: Path) -> int:
    try:
        big = capture.stat().st_size > _PARALLEL_BYTES
    except OSError:
        return 1  # replay_file reports the error
    if not big:
        return 1
    # One worker per CPU even on a busy machine: measured on 2 shared CPUs,
    # 2 workers beat 1 whatever the load (each reads the whole file, ~25%
    # more CPU in all, but they get a bigger share of contended CPUs). The
    # events are the same whatever the count.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cpus or 1))


def _pipeline_factory(config_path: Path | None, db_path: Path | None) -> Callable[[], Pipeline]:
    from lumen_sniff.config import Settings, load_settings
    from lumen_sniff.pipeline import Pipeline
    from lumen_sniff.stagesettings import pipeline_settings

    settings = load_settings(config_path, required=True) if config_path else Settings()
    salt = REPLAY_SALT
    if db_path is not None:
        from lumen_sniff.daemon import key_salt

        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        salt = key_salt(db_path.parent)  # the daemon's, so fingerprints match its events
    stage = pipeline_settings(settings, key_salt=salt)
    return lambda: Pipeline(stage)


def _print_json(event: UsageEvent) -> None:
    from lumen_sniff.serialize import event_to_dict

    sys.stdout.write(json.dumps(event_to_dict(event), separators=(",", ":")) + "\n")


async def _store(db_path: Path, events: list[UsageEvent]) -> None:
    from lumen_sniff.store import open_store

    store = await open_store(db_path)
    try:
        for start in range(0, len(events), _STORE_BATCH):
            for event in events[start : start + _STORE_BATCH]:
                store.writer.submit(event)
            await store.writer.flush()
    finally:
        await store.close()


def _endpoint(endpoint: tuple[str, int] | None) -> str:
    if endpoint is None:
        return "?"
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _print_summary(events: list[UsageEvent], report: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    rows: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, None])
    for e in events:
        row = rows[(e.provider, e.model or "?")]
        row[0] += 1
        for i, value in enumerate(
            (e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens,
             e.reasoning_tokens), start=1,
        ):  # fmt: skip
            row[i] += value
        if e.cost_usd is not None:
            row[6] = (row[6] or Decimal(0)) + e.cost_usd
    table = Table(title=f"{report.path.name}: {len(events)} LLM calls")
    for name in ("provider", "model", "calls", "input", "output", "cache read", "cache write",
                 "reasoning", "cost USD"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("provider", "model") else "right")
    for (provider, model), row in sorted(rows.items()):
        cost = "unpriced" if row[6] is None else f"{row[6]:.6f}"
        table.add_row(provider, model, *(str(v) for v in row[:6]), cost)
    console = Console()
    console.width = max(console.width, 132)  # never cut model names in pipes and logs
    console.print(table)
    tcp = report.tcp
    skipped = sum(report.skipped_frames.values())
    console.print(
        f"{report.frames} frames ({skipped} without TCP), {tcp['flows']} TCP flows, "
        f"{tcp['gap_bytes']} bytes lost in gaps, {report.ignored_connections} connections "
        f"not LLM traffic, {report.elapsed_s:.2f}s",
        highlight=False,
    )
    if report.tls_sessions:
        console.print(
            f"TLS: {report.tls_sessions} sessions, {len(report.tls_missing_keys)} without keys",
            highlight=False,
        )
