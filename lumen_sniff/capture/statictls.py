"""TLS libraries linked into an executable without symbols: one row per library.

Discovery asks :func:`judge_static_tls` about a file that exports no ``SSL_*``
symbol. Each row recognises its library cheaply (a marker string in read-only
data) and, only then, runs its locator, which either returns verified entry
addresses or the reason it could not (reported as the target's skip reason,
never guessed around).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from elftools.common.exceptions import ELFError

from lumen_sniff.capture import boringssl
from lumen_sniff.capture.elfscan import ElfImage

__all__ = ["STATIC_TLS", "StaticTls", "StaticTlsResult", "judge_static_tls"]


@dataclass(frozen=True, kw_only=True, slots=True)
class StaticTls:
    """One TLS library that may be linked, stripped, into an executable."""

    name: str
    """Short name shown in status ("boringssl-static")."""
    recognise: Callable[[ElfImage], bool]
    """Cheap test: does this file carry the library's code?"""
    locate: Callable[[str], boringssl.Located | boringssl.NotLocated]
    """Find and verify the functions to hook, or say why not."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaticTlsResult:
    """What a row found in a file."""

    library: str
    """The row's name."""
    found: boringssl.Located | boringssl.NotLocated
    """Verified addresses, or the reason there are none."""


STATIC_TLS: tuple[StaticTls, ...] = (
    StaticTls(
        name="boringssl-static",
        recognise=boringssl.is_static_boringssl,
        locate=boringssl.locate,
    ),
)
"""Every library recognised inside executables, tried in order."""


def judge_static_tls(path: str) -> StaticTlsResult | None:
    """Recognise a statically linked TLS library in ``path`` and locate its functions.

    Returns:
        None when no row recognises the file (or it is not a readable x86-64 ELF).
    """
    try:
        with ElfImage(path) as image:
            row = next((r for r in STATIC_TLS if r.recognise(image)), None)
    except (ELFError, OSError, ValueError):
        return None
    if row is None:
        return None
    return StaticTlsResult(library=row.name, found=row.locate(path))
