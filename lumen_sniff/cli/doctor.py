"""``lumen-sniff doctor``: check the eBPF machinery and say how to fix each failure.

Checks, in order: kernel version, BTF, kernel headers for bcc, tracefs, whether
bcc imports, whether a BPF program loads, whether a uprobe attaches, and which
TLS libraries the running processes use and whether each can be hooked. Then,
when a daemon answers on ``--api``, its blind spots: processes that talked TLS
to an LLM API host whose plaintext it could not read, and why.
"""

from __future__ import annotations

import glob
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.table import Table

from lumen_sniff.cli.client import ApiClient, api_options

__all__ = ["Check", "doctor", "run_checks", "unseen_checks"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    """What was checked."""
    ok: bool
    """Whether it passed."""
    detail: str
    """What was found."""
    fix: str = ""
    """How to fix a failure."""


def _kernel() -> Check:
    release = platform.release()
    major, minor = (int(x) for x in release.split(".")[:2])
    ok = (major, minor) >= (5, 8)
    return Check(
        name="kernel",
        ok=ok,
        detail=release,
        fix="" if ok else "ring buffers and CAP_BPF need Linux 5.8 or newer",
    )


def _btf() -> Check:
    ok = Path("/sys/kernel/btf/vmlinux").exists()
    return Check(
        name="BTF",
        ok=ok,
        detail="/sys/kernel/btf/vmlinux" if ok else "missing",
        fix="" if ok else "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y",
    )


def _headers() -> Check:
    build = Path("/lib/modules") / platform.release() / "build"
    if not build.exists():
        return Check(
            name="kernel headers",
            ok=False,
            detail=f"{build} missing",
            fix="run `make setup` (installs linux-headers and links them for bcc)",
        )
    target = os.path.realpath(build)
    matched = platform.release().split("-")[0] in target
    detail = target if matched else f"{target} (generic headers linked: enough for uprobes)"
    return Check(name="kernel headers", ok=True, detail=detail)


def _tracefs() -> Check:
    ok = Path("/sys/kernel/tracing/uprobe_events").exists()
    return Check(
        name="tracefs",
        ok=ok,
        detail="/sys/kernel/tracing" if ok else "not mounted",
        fix=""
        if ok
        else "mount -t tracefs nodev /sys/kernel/tracing "
        "(lumen-sniff mounts it itself when it starts)",
    )


def _bcc_import() -> Check:
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        return Check(
            name="bcc import",
            ok=False,
            detail=str(exc),
            fix="apt-get install python3-bpfcc, then `make setup` to link it into .venv",
        )
    return Check(name="bcc import", ok=True, detail="bcc (python3-bpfcc)")


def _probe_site() -> tuple[str, str] | None:
    """A TLS library file on this machine and a symbol its row hooks, to test-attach."""
    from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES

    for library in TLS_LIBRARIES:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            if library.file_names.search(path):
                return path, library.probes[0].sym
        for pattern in library.system_libraries:
            found = sorted(glob.glob(pattern))
            if found:
                return found[0], library.probes[0].sym
    return None


def _load_and_attach() -> list[Check]:
    try:
        from bcc import BPF
    except ImportError:
        return [Check(name="BPF load", ok=False, detail="bcc missing", fix="see bcc import")]
    try:
        program = BPF(text="int probe(void *ctx) { return 0; }")
    except Exception as exc:  # bcc raises bare Exception on compile/load failure
        return [
            Check(
                name="BPF load",
                ok=False,
                detail=str(exc)[:200],
                fix="run as root; check kernel headers (make setup) and CAP_BPF",
            )
        ]
    checks = [Check(name="BPF load", ok=True, detail="a test program compiled and loaded")]
    site = _probe_site()
    if site is None:
        checks.append(
            Check(
                name="uprobe attach",
                ok=False,
                detail="no TLS library found",
                fix="apt-get install libssl3",
            )
        )
        return checks
    lib, sym = site
    try:
        # Attached as the daemon attaches (its runtime), not through bcc's Python
        # binding: the kernel refuses two uprobes at one spot that differ in
        # ref_ctr_offset, which that binding leaves undefined.
        from lumen_sniff.capture.bpf.runtime import libbpf as lb
        from lumen_sniff.capture.bpf.runtime.uprobes import file_offset

        fd = program.load_func(b"probe", BPF.KPROBE).fd
        ev_name = f"lumen_doctor_{os.getpid()}"
        lb.detach_uprobe(
            lb.attach_uprobe(fd, lib, file_offset(lib, sym=sym), ret=False, ev_name=ev_name),
            ev_name,
        )
        checks.append(Check(name="uprobe attach", ok=True, detail=f"{lib}:{sym}"))
    except Exception as exc:
        checks.append(
            Check(
                name="uprobe attach",
                ok=False,
                detail=str(exc)[:200],
                fix="run as root with CAP_BPF/CAP_PERFMON; mount tracefs",
            )
        )
    finally:
        try:
            program.cleanup()
        except Exception as exc:  # bcc's detach fails when tracefs is not mounted
            checks.append(
                Check(
                    name="uprobe detach",
                    ok=False,
                    detail=str(exc)[:200],
                    fix="mount -t tracefs nodev /sys/kernel/tracing",
                )
            )
    return checks


def _tls_libraries() -> list[Check]:
    from lumen_sniff.capture.bpf.discovery import Discovery
    from lumen_sniff.capture.bpf.tlslib import NO_TLS_SYMBOLS, SKIP_REASONS

    discovery = Discovery(exclude_pids=(os.getpid(),))
    discovery.scan_all(system=False)
    checks = []
    for target in sorted(discovery.files.values(), key=lambda t: t.path):
        if not target.pids or target.skipped == NO_TLS_SYMBOLS:
            continue
        comms = sorted({_comm(pid) for pid in target.pids})
        detail = f"{len(target.pids)} process(es): " + ", ".join(comms[:5])
        hookable = not target.skipped
        why = SKIP_REASONS.get(target.skipped, target.skipped)
        checks.append(
            Check(
                name=f"TLS: {target.path}",
                ok=hookable,
                detail=f"{target.library.name}: {detail}" if target.library else f"{detail}; {why}",
            )
        )
    return checks


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)


def run_checks() -> list[Check]:
    """Run every check; nothing here changes the system."""
    checks: list[Check] = []
    simple: tuple[Callable[[], Check], ...] = (_kernel, _btf, _headers, _tracefs, _bcc_import)
    for func in simple:
        checks.append(func())
    checks.extend(_load_and_attach())
    checks.extend(_tls_libraries())
    return checks


def unseen_checks(status: dict[str, object] | None, api_url: str) -> list[Check]:
    """One failed check per blind spot the daemon reports (pure, so it can be tested).

    Args:
        status: The daemon's ``/api/status``, or None when it did not answer.
        api_url: Where it was asked.

    Returns:
        The checks; a single one when there is no daemon or nothing unseen.
    """
    if status is None:
        return [
            Check(
                name="unseen: daemon",
                ok=True,
                detail=f"no daemon at {api_url}: blind spots are reported by a running daemon",
            )
        ]
    rows = status.get("unseen")
    if not isinstance(rows, list) or not rows:
        return [Check(name="unseen", ok=True, detail="every TLS call to an LLM host was read")]
    checks = []
    for row in rows:
        who = row.get("service") or row.get("process")
        checks.append(
            Check(
                name=f"unseen: {who} → {row.get('host')}",
                ok=False,
                detail=(
                    f"{row.get('process')} ({row.get('exe')}), {row.get('connections')} "
                    f"connection(s), {row.get('bytes_sent')} B sent, "
                    f"{row.get('bytes_received')} B received, last {row.get('last_seen')}"
                ),
                fix=str(row.get("reason")),
            )
        )
    return checks


@click.command()
@api_options
def doctor(api: ApiClient) -> None:
    """Check kernel, BTF, headers, bcc, BPF load, uprobe attach, TLS libraries, blind spots."""
    if os.geteuid() != 0:
        click.echo("note: not root — BPF load and uprobe checks will fail; run with sudo", err=True)
    checks = run_checks()
    try:
        status = api.get("/api/status")
    except (httpx.HTTPError, click.ClickException):
        status = None
    checks.extend(unseen_checks(status, api.base_url))
    table = Table("check", "", "found", "fix")
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail, c.fix)
    Console().print(table)
    # Libraries that cannot be hooked and blind spots are findings, not broken set-up.
    if not all(c.ok for c in checks if not c.name.startswith(("TLS: ", "unseen"))):
        raise SystemExit(1)
