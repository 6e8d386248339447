"""The entries of the ``lumen_paths`` LPM trie: path needles → key and flags.

The kernel looks the path up once at its start and once at every later ``/``
(``judge_head`` in ``bpf/lumen.bpf.c``). An LPM trie answers with the *longest*
stored needle that the bytes there start with, so its flags must already say
everything the shorter needles under it would: a prefix-only needle that starts
with an anywhere needle is marked anywhere too (wherever it matches, the shorter
one matches as well). Needles longer than the key are cut, and at the first
byte that can end a path (a needle holding it could never match): a shorter
needle matches more paths, which only means more is copied.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from typing import Any

from lumen_sniff.capture.bpf.libraries import TLS_LIBRARIES
from lumen_sniff.capture.bpf.ringrecords import (
    PATH_ANYWHERE,
    PATH_AT_START,
    PATH_BYTES,
    PathKeyStruct,
)
from lumen_sniff.capture.bpf.settings import BpfSettings

__all__ = ["load_paths", "path_entries", "path_key", "refused_program"]

_PATH_ENDS = b" ?\r\n"


def _needle(text: str) -> bytes:
    raw = text.encode()[:PATH_BYTES]
    for end in _PATH_ENDS:
        cut = raw.find(bytes([end]))
        if cut >= 0:
            raw = raw[:cut]
    return raw


def path_entries(prefixes: tuple[str, ...], parts: tuple[str, ...]) -> dict[bytes, int]:
    """Needle bytes → LUMEN_PATH_* flags.

    Args:
        prefixes: Needles that match at the start of a path.
        parts: Needles that match at any ``/`` of a path.

    Raises:
        ValueError: a needle does not start with ``/`` (the kernel only looks there).
    """
    out: dict[bytes, int] = {}
    for texts, flag in ((prefixes, PATH_AT_START), (parts, PATH_ANYWHERE)):
        for text in texts:
            if not text.startswith("/"):
                raise ValueError(f"path needle {text!r} does not start with '/'")
            needle = _needle(text)
            out[needle] = out.get(needle, 0) | flag
    anywhere = [n for n, f in out.items() if f & PATH_ANYWHERE]
    for needle in out:
        if any(needle.startswith(a) for a in anywhere):
            out[needle] |= PATH_ANYWHERE
    return out


def path_key(needle: bytes) -> PathKeyStruct:
    """The trie key of a needle (``prefixlen`` in bits)."""
    data = (ctypes.c_uint8 * PATH_BYTES).from_buffer_copy(needle.ljust(PATH_BYTES, b"\0"))
    return PathKeyStruct(prefixlen=len(needle) * 8, data=data)


def load_paths(bpf: Any, settings: BpfSettings) -> int:
    """Fill the ``lumen_paths`` trie (bcc-style ``bpf[b"lumen_paths"]``) from the settings'
    needles, when the program judges paths at all.

    Returns:
        The number of entries written.
    """
    if not settings.judges_paths:
        return 0
    table = bpf[b"lumen_paths"]
    entries = path_entries(settings.llm_path_prefixes, settings.llm_path_parts)
    for needle, flags in entries.items():
        table[path_key(needle)] = ctypes.c_uint8(flags)
    return len(entries)


def refused_program(bpf: Any, names: Iterable[str] | None = None) -> str:
    """Load every probe program now (the object keeps them); the first refusal, or "".

    The request-line judge is a ``bpf_loop`` callback (kernel >= 5.17, with BTF
    func_info); a kernel that refuses it (an older one, or a verifier that gives up)
    must cost the budget, never the capture: the loader then compiles without it.
    Every probe function of the TLS library table unless ``names`` is given.
    """
    if names is None:
        names = {p.fn_name for library in TLS_LIBRARIES for p in library.probes}
    for name in names:
        try:
            bpf.load_func(name.encode())  # the loader's program table gives its type
        except (OSError, KeyError) as exc:
            return f"{name}: {exc}"
    return ""
