"""Build and run the Go test client (``tests/support/goclient/main.go``) with Debian's Go.

The program uses the standard library only, so it builds offline: GOPATH mode,
no proxy, caches in a private temporary directory. It waits for one line on
stdin before it starts, so a test can let the capture hook the fresh binary
first; :func:`run_unhooked` runs an identical copy from a memfd, which the
capture never hooks (``/proc/PID/maps`` names it ``/memfd:… (deleted)``), to
compare output and exit code with and without probes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GO_SOURCE", "GoRun", "build_goclient", "go_available", "run_unhooked"]

GO_SOURCE = Path(__file__).resolve().parent / "goclient" / "main.go"
"""The client's source."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GoRun:
    """What one run of the client printed."""

    pid: int
    returncode: int
    stdout: str
    stderr: str


def go_available() -> tuple[bool, str]:
    """Whether the ``go`` command exists (Debian's golang-go)."""
    if shutil.which("go") is None:
        return False, "the go command is missing (install golang-go: make setup)"
    return True, ""


def _go_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        HOME=str(work),
        GOPATH=str(work / "gopath"),
        GOCACHE=str(work / "gocache"),
        GO111MODULE="off",
        GOPROXY="off",
        GOFLAGS="",
        CGO_ENABLED="0",
    )
    return env


def build_goclient(work: Path, *, stripped: bool, name: str = "goclient") -> Path:
    """Build the client into ``work`` (``-ldflags=-s -w`` when ``stripped``)."""
    out = work / name
    argv = ["go", "build", "-o", str(out)]
    if stripped:
        argv.append("-ldflags=-s -w")
    argv.append(str(GO_SOURCE))
    subprocess.run(argv, check=True, env=_go_env(work), cwd=work, timeout=600)
    return out


def run_unhooked(binary: Path, *args: str, timeout_s: float = 120) -> GoRun:
    """Run a copy of ``binary`` from a memfd: no file on disk, so no probe on it."""
    fd = os.memfd_create(binary.name, 0)
    try:
        os.write(fd, binary.read_bytes())
        proc = subprocess.run(
            [f"/proc/self/fd/{fd}", *args],
            input="\n",
            capture_output=True,
            text=True,
            timeout=timeout_s,
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    return GoRun(pid=0, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
