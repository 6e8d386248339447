"""``lumen-sniff install-service``: install and enable the systemd unit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

__all__ = ["install_service", "render_unit"]

_UNIT_NAME = "lumen-sniff.service"
_DEFAULT_EXEC = "/usr/local/bin/lumen-sniff"


def _packaged_unit() -> str:
    """The unit file from the source tree (systemd/lumen-sniff.service)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "systemd" / _UNIT_NAME
        if candidate.is_file():
            return candidate.read_text()
    raise click.ClickException(f"cannot find systemd/{_UNIT_NAME} next to the package")


def render_unit(template: str, executable: str) -> str:
    """Point the unit's ExecStart at ``executable`` (an absolute path)."""
    if not os.path.isabs(executable):
        raise ValueError(f"executable must be an absolute path, got {executable!r}")
    return template.replace(f"ExecStart={_DEFAULT_EXEC} ", f"ExecStart={executable} ", 1)


@click.command("install-service")
@click.option(
    "--unit-dir",
    type=click.Path(path_type=Path),
    default=Path("/etc/systemd/system"),
    show_default=True,
)
@click.option("--no-enable", is_flag=True, help="Write the unit but do not enable/start it.")
def install_service(unit_dir: Path, no_enable: bool) -> None:
    """Install systemd/lumen-sniff.service, pointing at this lumen-sniff, and enable it."""
    executable = shutil.which("lumen-sniff") or str(Path(sys.argv[0]).resolve())
    unit = render_unit(_packaged_unit(), os.path.abspath(executable))
    unit_dir.mkdir(parents=True, exist_ok=True)
    target = unit_dir / _UNIT_NAME
    target.write_text(unit)
    target.chmod(0o644)
    Path("/etc/lumen-sniff").mkdir(mode=0o755, exist_ok=True)
    click.echo(f"wrote {target} (ExecStart={executable})")
    if no_enable:
        return
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        click.echo(
            "systemd is not running here: start it with `systemctl enable --now "
            f"{_UNIT_NAME}` on a systemd host"
        )
        return
    for args in (["daemon-reload"], ["enable", "--now", _UNIT_NAME]):
        result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"systemctl {' '.join(args)}: {result.stderr.strip()}")
    click.echo(f"enabled and started {_UNIT_NAME}; logs: journalctl -u {_UNIT_NAME} -f")
