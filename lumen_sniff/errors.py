"""lumen-sniff's exceptions: one root, translated from other libraries at the edges.

::

    LumenError
    ├── ConfigError          invalid config file or flag (file, line, reason)
    ├── CaptureError         capture could not start or attach
    │   └── BpfUnavailable   bcc, BTF, headers or privileges missing
    ├── ReplayError          unreadable / corrupt / wrong-type capture file
    │   └── KeylogError      unreadable or unusable TLS key log
    └── StoreError           the database could not be opened or written

Protocol problems are never exceptions: a bad connection becomes a
:class:`lumen_sniff.model.Desync` event.
"""

from __future__ import annotations

__all__ = [
    "BpfUnavailable",
    "CaptureError",
    "ConfigError",
    "KeylogError",
    "LumenError",
    "ReplayError",
    "StoreError",
]


class LumenError(Exception):
    """Root of every exception lumen-sniff raises on purpose."""


class ConfigError(LumenError):
    """An invalid config file or command-line value."""


class CaptureError(LumenError):
    """A capture backend could not start or attach."""


class BpfUnavailable(CaptureError):
    """The eBPF machinery (bcc, BTF, headers, privileges) is missing."""


class ReplayError(LumenError):
    """A capture file could not be read."""


class KeylogError(ReplayError):
    """A TLS key log could not be read or used."""


class StoreError(LumenError):
    """The database could not be opened or written."""
