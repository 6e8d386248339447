"""Who spent it: a short, stable service name for a process.

Strategy: an operator wants the name they deploy under, not "python". The
sources are tried in order and the first that names something wins:

1. the systemd service (``nginx.service`` → ``nginx``); login sessions and
   ``user@UID.service`` managers are not services, so they are passed over;
2. the container: Kubernetes ``pod/container``, else a docker/containerd/podman
   container's name (names come from the runtime's state files, read by
   :mod:`lumen_sniff.capture.procinfo`; without them, the pod uid or the
   container id's first 12 digits);
3. the command line, by launcher (one row per launcher in :data:`_LAUNCHERS`):
   ``python -m app.worker`` → ``app.worker``, ``gunicorn myapp:app`` → ``myapp``,
   ``uvicorn pkg.mod:app`` → ``pkg.mod``, ``node server.js`` → ``server.js``,
   ``java -jar app.jar`` → ``app.jar``; known agents by path (Claude Code →
   ``claude``, Codex → ``codex``);
4. the executable's basename, else the comm.

Only the one token that names the program is kept (a script's basename, a
module): never the whole command line, which may hold secrets.
Pure: no I/O, so it is tested on plain values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ContainerInfo", "command_name", "service_name"]

_MAX_LEN = 64

# A cgroup path's Kubernetes pod: kubepods-burstable-pod<uid>.slice (systemd
# driver, "_" for "-") or /kubepods/burstable/pod<uid>/ (cgroupfs driver).
_POD_RE = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)
# module:attr as WSGI/ASGI servers take it; a host:port (digits after ":") is not one.
_APP_RE = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_][\w.()]*$")
# Known agents: by their npm package in the path of their executable or script,
# or by the executable's own name (Claude Code is one Bun-compiled binary).
_AGENT_PACKAGES: tuple[tuple[str, str], ...] = (
    ("/@anthropic-ai/claude-code", "claude"),
    ("/@openai/codex", "codex"),
)
_AGENT_BINARIES = frozenset({"claude", "codex"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerInfo:
    """What the container runtime says about a process's container."""

    container_id: str | None = None
    """64-hex-digit id from the cgroup path."""
    name: str | None = None
    """The container's name (docker/podman name, Kubernetes container name)."""
    pod: str | None = None
    """Kubernetes pod name, when the runtime recorded one."""


def service_name(
    *,
    unit: str | None,
    cgroup_path: str,
    container: ContainerInfo,
    argv: Sequence[str],
    exe: str | None,
    comm: str,
) -> str | None:
    """The service a process belongs to (see the module docstring for the order).

    Args:
        unit: systemd unit from the cgroup path (``.service`` or ``.scope``).
        cgroup_path: The process's cgroup v2 path.
        container: Container facts (all None outside containers).
        argv: The command line, split.
        exe: Executable path.
        comm: Kernel process name.

    Returns:
        The name (at most 64 characters), or None when nothing names it.
    """
    for name in (
        _from_unit(unit),
        _from_container(cgroup_path, container),
        command_name(argv, exe),
        _basename(exe) if exe else None,
        comm or None,
    ):
        if name:
            return name[:_MAX_LEN]
    return None


def _from_unit(unit: str | None) -> str | None:
    if not unit or not unit.endswith(".service") or unit.startswith("user@"):
        return None
    return unit.removesuffix(".service")


def _from_container(cgroup_path: str, c: ContainerInfo) -> str | None:
    pod_uid = _POD_RE.search(cgroup_path)
    if c.pod or pod_uid:
        pod = c.pod or f"pod-{pod_uid.group(1)[:8] if pod_uid else '?'}"
        inner = c.name or (c.container_id[:12] if c.container_id else None)
        return f"{pod}/{inner}" if inner else pod
    if c.name:
        return c.name.lstrip("/")
    return c.container_id[:12] if c.container_id else None


def command_name(argv: Sequence[str], exe: str | None = None) -> str | None:
    """The program a command line runs, by launcher (None when it says nothing).

    Args:
        argv: The command line, split.
        exe: Executable path (recognises agents whose argv[0] is rewritten).

    Returns:
        A module, script or application name, or None.
    """
    for path in (exe or "", *argv[:2]):
        agent = _agent(path)
        if agent:
            return agent
    return _by_launcher(list(argv), depth=0)


def _agent(path: str) -> str | None:
    for package, name in _AGENT_PACKAGES:
        if package in path:
            return name
    base = _basename(path).removesuffix(".exe")
    return base if base in _AGENT_BINARIES else None


def _by_launcher(argv: list[str], depth: int) -> str | None:
    if not argv or depth > 2:
        return None
    prog = _basename(argv[0])
    for pattern, parse in _LAUNCHERS:
        if pattern.fullmatch(prog):
            found = parse(argv[1:])
            if found is None:
                return None
            # A launcher may start another: python -m uvicorn pkg:app, or a
            # shebang script (python /venv/bin/gunicorn app:app).
            again = None
            if found in argv[1:]:
                rest = argv[argv.index(found, 1) + 1 :]
                again = _by_launcher([found, *rest], depth + 1)
            return again or _basename(found)
    return None


def _python(args: list[str]) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("-m") and len(a) > 2:
            return a[2:]
        if a == "-c" or a == "-":
            return None
        if a in ("-X", "-W", "--check-hash-based-pycs"):
            i += 2
            continue
        if not a.startswith("-"):
            return a
        i += 1
    return None


def _app_server(args: list[str]) -> str | None:
    for a in args:
        m = _APP_RE.match(a)
        if m:
            return m.group(1)
    return None


def _first_positional(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def _java(args: list[str]) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-jar", "--module", "-m") and i + 1 < len(args):
            return args[i + 1].split("/")[0] if a != "-jar" else args[i + 1]
        if a in ("-cp", "-classpath", "--class-path", "-p", "--module-path", "--add-modules"):
            i += 2
            continue
        if not a.startswith("-"):
            return a
        i += 1
    return None


def _bun(args: list[str]) -> str | None:
    rest = args[1:] if args[:1] == ["run"] else args
    return _first_positional(rest)


_LAUNCHERS: tuple[tuple[re.Pattern[str], Callable[[list[str]], str | None]], ...] = (
    (re.compile(r"python[\d.]*|pypy[\d.]*"), _python),
    (re.compile(r"gunicorn|uvicorn|hypercorn|granian|daphne"), _app_server),
    (re.compile(r"node(js)?|deno|ruby|perl|php[\d.]*"), _first_positional),
    (re.compile(r"bun"), _bun),
    (re.compile(r"java"), _java),
)
"""Launcher (argv[0] basename) → the parser that names what it runs."""


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
