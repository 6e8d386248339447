"""The registry of binaries lumen-sniff found but cannot hook, and why.

Strategy: whoever learns that a file cannot be hooked says so here, keyed by the
file's (device, inode) as discovery keys it, with a reason a person can act on:

- target discovery's skipped files (a TLS row's judge refused it: a Go binary,
  BoringSSL with no symbols): a row returns a skip key from its ``judge`` and
  adds its text to ``tlslib.SKIP_REASONS``; the files a process maps are
  reported when that process needs explaining;
- attach failures, including a row's locator that could not find or verify
  its functions: it raises with the reason, and the loader reports
  ``"<row name>: <message>"`` for that file.

The blind-spot report (:mod:`lumen_sniff.capture.unseen`) asks it about the
files a process maps when that process opens TLS that no probe read.
Thread-safe: the discovery thread writes, the socket thread and status read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["FileKey", "Unhookable"]

FileKey = tuple[str, int]
"""(device as ``/proc/PID/maps`` prints it, e.g. "fd:01", inode)."""


class Unhookable:
    """(device, inode) → (path, reason) of every binary that could not be hooked."""

    def __init__(self, *, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[FileKey, tuple[str, str]] = {}

    def report(self, key: FileKey, path: str, reason: str) -> None:
        """Record why the file ``key`` (at ``path``) is not hooked; the latest reason wins."""
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._max:
                return  # bounded: the first files found are kept
            self._entries[key] = (path, reason)

    def forget(self, key: FileKey) -> None:
        """The file is hooked after all (e.g. a later locator succeeded)."""
        with self._lock:
            self._entries.pop(key, None)

    def reason(self, keys: Iterable[FileKey]) -> str | None:
        """The reason of the first of ``keys`` (an executable, then its libraries) known here."""
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    return entry[1]
        return None

    def entries(self) -> list[dict[str, str]]:
        """Every registered file, for status: ``[{"path", "reason"}]``."""
        with self._lock:
            return [{"path": p, "reason": r} for p, r in self._entries.values()]
