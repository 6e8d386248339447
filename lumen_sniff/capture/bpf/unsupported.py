"""TLS stacks recognised inside an executable but not hooked: one row each, with the reason.

A file no :data:`~lumen_sniff.capture.bpf.libraries.TLS_LIBRARIES` row accepts is
usually just a program without TLS. Some, though, carry a TLS stack the capture
cannot read yet; saying so (status ``skipped``, ``doctor``, the unseen report)
beats a silent "no TLS symbols". Each row recognises its stack by a marker in
read-only data, which costs one ``find`` over that section.
"""

from __future__ import annotations

from dataclasses import dataclass

from elftools.common.exceptions import ELFError

from lumen_sniff.capture.bpf.elfscan import ElfImage

__all__ = ["UNSUPPORTED", "Unsupported", "unsupported_reason"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Unsupported:
    """A TLS stack recognised in executables and not hooked."""

    marker: bytes
    """Bytes its code leaves in .rodata (a source path of its crate, say)."""
    reason: str
    """The skip reason shown to the operator."""


UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported(
        # Cargo's registry paths in panic locations: ".../rustls-0.23.46/src/conn.rs".
        marker=b"/rustls-0.",
        reason=(
            "rustls (statically linked Rust) not supported: its plaintext reader and "
            "writer are inlined generic code without symbols"
        ),
    ),
)
"""Recognised, unsupported stacks, tried in order."""


def unsupported_reason(path: str) -> str:
    """The first row's reason whose marker ``path`` carries, or "" for none."""
    try:
        with ElfImage(path) as image:
            return next((row.reason for row in UNSUPPORTED if image.contains(row.marker)), "")
    except (ELFError, OSError, ValueError):
        return ""
