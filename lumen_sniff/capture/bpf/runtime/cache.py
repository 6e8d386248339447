"""Compiled objects: from the on-disk cache, or from a compile child.

A warm start reads the object from the cache and compiles nothing. A cold one
runs ``python -m lumen_sniff.capture.bpf.runtime.compiler`` (the only place bcc
and LLVM are loaded) and stores what it wrote. :class:`CompileJob` starts the
child at once, so several programs compile in parallel while the caller goes
on; :meth:`CompileJob.result` waits.

The cache key is a hash of everything the instructions depend on: the C text,
the cflags, the headers in the ``-I`` directories, the kernel (``/proc/version``,
which carries the release and build), the kernel headers bcc compiles against
and bcc itself. The directory is root's (0700, files 0600, written atomically).
An entry that is unreadable, not owned by this user, writable by others or not
a well-formed object is ignored and rebuilt; the verifier checks every program
anyway when it is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lumen_sniff.capture.bpf.runtime.obj import FORMAT, CompiledObject, parse_object
from lumen_sniff.errors import BpfUnavailable

__all__ = ["DEFAULT_CACHE_DIR", "CompileJob", "CompileRequest", "cache_key"]

log = logging.getLogger("lumen_sniff.capture.bpf.cache")

DEFAULT_CACHE_DIR = Path("/var/cache/lumen-sniff/bpf")
"""Where compiled objects are kept unless config says otherwise."""

_KEEP_PER_NAME = 4
_PACKAGE_ROOT = Path(__file__).resolve().parents[4]


@dataclass(frozen=True, kw_only=True, slots=True)
class CompileRequest:
    """One C program to compile."""

    name: str
    """Short name for file names and messages ("capture", "sockets", "guard")."""
    text: str
    """The C source."""
    cflags: tuple[str, ...]
    """bcc cflags (-I, -D)."""


def _file_identity(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:absent"
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _environment() -> list[str]:
    release = os.uname().release
    parts = [Path("/proc/version").read_text().strip()]
    parts.append(_file_identity(Path(f"/lib/modules/{release}/build")))
    spec = importlib.util.find_spec("bcc")
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        parts += [_file_identity(package / "version.py"), _file_identity(package / "libbcc.py")]
    return parts


def cache_key(request: CompileRequest) -> str:
    """Hex digest of everything the compiled instructions depend on."""
    digest = hashlib.sha256()
    headers: list[str] = []
    for flag in sorted(request.cflags):
        if flag.startswith("-I") and Path(flag[2:]).is_dir():
            for header in sorted(Path(flag[2:]).glob("*.h")):
                headers.append(f"{header.name}:{hashlib.sha256(header.read_bytes()).hexdigest()}")
    blob = {
        "format": FORMAT,
        "text": request.text,
        "cflags": list(request.cflags),
        "headers": headers,
        "environment": _environment(),
    }
    digest.update(json.dumps(blob, sort_keys=True).encode())
    return digest.hexdigest()


def _read_trusted(path: Path) -> CompiledObject | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            log.warning("ignoring %s: not owned by this user or writable by others", path)
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    finally:
        os.close(fd)
    try:
        return parse_object(data)
    except ValueError as exc:
        log.warning("ignoring cached BPF object %s: %s", path, exc)
        return None


def _write(directory: Path, path: Path, data: bytes) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        prefix = path.name.split("-", 1)[0] + "-"
        old = sorted(
            (p for p in directory.glob(prefix + "*.json") if p != path),
            key=lambda p: p.stat().st_mtime,
        )
        for stale in old[: max(0, len(old) - (_KEEP_PER_NAME - 1))]:
            stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not store the compiled BPF object in %s: %s", directory, exc)


class CompileJob:
    """One compiled object, from the cache or from a compile child started at once.

    Args:
        request: What to compile.
        cache_dir: The object cache (None: never read or write a cache).
    """

    def __init__(self, request: CompileRequest, cache_dir: Path | None = DEFAULT_CACHE_DIR) -> None:
        self.request = request
        self.cached = False
        """The object came from the cache (no compile)."""
        self.seconds = 0.0
        """Wall time to obtain the object."""
        self._started = time.monotonic()
        self._obj: CompiledObject | None = None
        self._error = ""
        self._thread: threading.Thread | None = None
        self._path: Path | None = None
        self._dir = cache_dir
        if cache_dir is not None:
            self._path = cache_dir / f"{request.name}-{cache_key(request)[:40]}.json"
            self._obj = _read_trusted(self._path)
        if self._obj is not None:
            self.cached = True
            self.seconds = time.monotonic() - self._started
            return
        self._thread = threading.Thread(
            target=self._compile, name=f"lumen-bpf-compile-{request.name}", daemon=True
        )
        self._thread.start()

    def _compile(self) -> None:
        env = dict(os.environ)
        path = [str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        request = json.dumps({"text": self.request.text, "cflags": list(self.request.cflags)})
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "lumen_sniff.capture.bpf.runtime.compiler"],
                input=request.encode(),
                capture_output=True,
                env=env,
                cwd=_PACKAGE_ROOT,  # `-m` puts the cwd first: this package, not another
                check=False,
            )
        except OSError as exc:
            self._error = f"could not start the compiler: {exc}"
            return
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-12:]
            self._error = " | ".join(tail) or f"compiler exited with {proc.returncode}"
            return
        try:
            self._obj = parse_object(proc.stdout)
        except ValueError as exc:
            self._error = f"the compiler wrote no usable object: {exc}"
            return
        if self._dir is not None and self._path is not None:
            _write(self._dir, self._path, proc.stdout)

    def verdict(self, name: str) -> bool:
        """Whether an earlier start recorded ``name`` for this very object on this kernel.

        The object's key covers the C text, cflags, headers, kernel and bcc, so a
        fact the kernel established about it (e.g. every program passed the
        verifier) holds until one of those changes. Markers are trusted like the
        object itself: owned by this user, not writable by others.
        """
        if self._path is None:
            return False
        try:
            st = os.lstat(self._path.with_suffix(f".{name}"))
        except OSError:
            return False
        return st.st_uid == os.geteuid() and not st.st_mode & 0o022

    def record(self, name: str) -> None:
        """Record ``name`` beside the cached object (nothing without a cache)."""
        if self._path is not None and self._dir is not None:
            marker = self._path.with_suffix(f".{name}")
            try:
                self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError as exc:
                log.warning("could not record %s: %s", marker, exc)

    def result(self) -> CompiledObject:
        """The object (waiting for the compile child).

        Raises:
            BpfUnavailable: the program did not compile (with bcc's message).
        """
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.seconds = time.monotonic() - self._started
        if self._obj is None:
            name = self.request.name
            raise BpfUnavailable(f"the {name} BPF program did not compile: {self._error}")
        return self._obj
