"""Find SSL_read and SSL_write in a stripped executable that links BoringSSL statically.

Bun, and the executables ``bun build --compile`` makes (Claude Code), carry
BoringSSL with every ``SSL_*`` symbol stripped. What survives is BoringSSL's own
error reporting: ``OPENSSL_PUT_ERROR(SSL, reason)`` expands to a call of
``ERR_put_error`` with the library (16 for SSL), the reason code, ``__FILE__``
and ``__LINE__``. So each error site in ``ssl/ssl_lib.cc`` loads the address of
that path string next to three small constants, and the (reason, line) pairs
name the function they sit in.

Strategy:

1. Find the string ``.../ssl/ssl_lib.cc`` and every instruction that loads its
   address (``mov r32, imm32`` in a non-PIE file, ``lea`` in a PIE one). Decode the
   few instructions after each load: the argument registers give library, reason
   and line (the file's argument position tells which register is which, so both
   the four- and the five-argument ``ERR_put_error`` of different BoringSSL
   versions are read).
2. Reason codes are stable across BoringSSL versions; line numbers are not, but
   their order within one file is. ``SSL_write`` is the one function whose sites
   are UNINITIALIZED, HANDSHAKE_FAILURE and BAD_LENGTH, in that line order and a
   few lines apart. ``ssl_read_impl`` is the function above it in the file with
   UNINITIALIZED then HANDSHAKE_FAILURE. ``SSL_read`` (with ``SSL_peek`` inlined
   into it) holds the SHOULD_NOT_HAVE_BEEN_CALLED site between those two, calls
   ``ssl_read_impl`` directly and then writes back the consumed span.
   ``SSL_shutdown`` (the close signal; optional) has UNINITIALIZED then
   APPLICATION_DATA_ON_SHUTDOWN and calls ``ssl_read_impl``. (``SSL_free`` has no
   error site to find it by.)
3. Each entry is verified (:mod:`funcshape`): padding, prologue, an exact
   instruction path to the evidence, and at least one direct caller.

Anything ambiguous or missing gives a :class:`NotLocated` with the reason; no
probe is attached. Results are cached in memory by build id, so a second copy of
the same executable costs a read of its headers.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from elftools.common.exceptions import ELFError

from lumen_sniff.capture.bpf.elfscan import AddressLoad, ElfImage
from lumen_sniff.capture.bpf.funcshape import decode, function_entry

__all__ = ["Located", "NotLocated", "is_static_boringssl", "locate"]

log = logging.getLogger("lumen_sniff.capture.bpf.boringssl")

SSL_LIB_SUFFIX = b"/ssl/ssl_lib.cc"
"""Tail of the source path BoringSSL's error macro passes as __FILE__."""

MARKER = b"openssl_is_boringssl"
"""Exported-function name BoringSSL keeps in every build's strings."""

ERR_LIB_SSL = 16
R_SHOULD_NOT_HAVE_BEEN_CALLED = 66  # ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED
R_BAD_LENGTH = 111  # SSL_R_BAD_LENGTH
R_HANDSHAKE_FAILURE = 215  # SSL_R_SSL_HANDSHAKE_FAILURE
R_UNINITIALIZED = 226  # SSL_R_UNINITIALIZED
R_APPLICATION_DATA_ON_SHUTDOWN = 291  # SSL_R_APPLICATION_DATA_ON_SHUTDOWN

_MAX_SPAN_LINES = 60
"""Most source lines one function's error sites may span."""

_ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
_NAMES32 = {"edi": "rdi", "esi": "rsi", "edx": "rdx", "ecx": "rcx", "r8d": "r8", "r9d": "r9"}
_MOV_IMM = re.compile(r"^(e[a-z]{2}|r[89]d), (0x[0-9a-f]+|\d+)$")
_STORE = re.compile(r"^qword ptr \[r\w+ \+ 0x[0-9a-f]+\], r\w+$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Located:
    """Verified entry addresses of a static BoringSSL's functions."""

    addresses: tuple[tuple[str, int], ...]
    """(function name, virtual address) pairs, e.g. ("SSL_write", 0x3531300)."""
    build_id: str
    """GNU build id of the file (hex), the cache key."""
    method: str
    """How they were found ("ssl_lib.cc error sites")."""
    locate_ms: float
    """Time the search took (0 when served from the cache)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class NotLocated:
    """Why nothing was attached."""

    reason: str
    """Human-readable cause, shown as a skipped/unseen reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Site:
    vaddr: int
    reason: int
    line: int


_cache: dict[str, Located | NotLocated] = {}
_cache_lock = threading.Lock()


def is_static_boringssl(image: ElfImage) -> bool:
    """The file carries BoringSSL's own code (not just a reference to a library)."""
    return image.contains(MARKER) and bool(image.strings_ending(SSL_LIB_SUFFIX))


def locate(path: str) -> Located | NotLocated:
    """Locate and verify SSL_read and SSL_write in ``path``.

    Args:
        path: An executable known (or suspected) to link BoringSSL statically.

    Returns:
        The addresses, or the reason they were not found. Never raises for a bad file.
    """
    started = time.monotonic()
    try:
        with ElfImage(path) as image:
            if image.build_id:
                with _cache_lock:
                    hit = _cache.get(image.build_id)
                if isinstance(hit, Located):
                    return Located(
                        addresses=hit.addresses, build_id=hit.build_id,
                        method=hit.method, locate_ms=0.0,
                    )  # fmt: skip
                if hit is not None:
                    return hit
            result = _locate(image, started)
            if image.build_id:
                with _cache_lock:
                    _cache[image.build_id] = result
            return result
    except (ELFError, OSError, ValueError) as exc:
        return NotLocated(reason=f"static BoringSSL, file unreadable ({exc})")


def _locate(image: ElfImage, started: float) -> Located | NotLocated:
    strings = image.strings_ending(SSL_LIB_SUFFIX)
    if not strings:
        return NotLocated(reason="static BoringSSL, functions not located (no ssl_lib.cc path)")
    loads = [load for addr in strings for load in image.address_loads(addr)]
    sites = [s for load in loads if (s := _site(image, load)) is not None]
    by_entry: dict[int, list[_Site]] = defaultdict(list)
    for site in sites:
        entry = function_entry(image, site.vaddr)
        if entry is not None:
            by_entry[entry].append(site)
    found = _identify(image, by_entry)
    if isinstance(found, NotLocated):
        return found
    elapsed = (time.monotonic() - started) * 1000
    log.info("located BoringSSL in %s in %.0f ms: %s", image.path, elapsed,
             ", ".join(f"{n}={a:#x}" for n, a in found))  # fmt: skip
    return Located(
        addresses=found, build_id=image.build_id, method="ssl_lib.cc error sites",
        locate_ms=elapsed,
    )  # fmt: skip


def _site(image: ElfImage, load: AddressLoad) -> _Site | None:
    """Read (library, reason, line) from the argument set-up after a __FILE__ load."""
    if load.register not in _ARG_REGS[1:5]:
        return None
    k = _ARG_REGS.index(load.register)
    values: dict[str, int] = {}
    for insn in decode(image.read(load.insn_vaddr, 64), load.insn_vaddr, limit=10)[1:]:
        if insn.mnemonic in ("call", "jmp"):
            break
        m = _MOV_IMM.match(insn.op_str)
        if insn.mnemonic == "mov" and m and m.group(1) in _NAMES32:
            values.setdefault(_NAMES32[m.group(1)], int(m.group(2), 0))
        elif insn.mnemonic == "xor":
            regs = insn.op_str.split(", ")
            if len(regs) == 2 and regs[0] == regs[1] and regs[0] in _NAMES32:
                values.setdefault(_NAMES32[regs[0]], 0)
    lib, reason, line = (values.get(_ARG_REGS[i]) for i in (0, k - 1, k + 1))
    if lib != ERR_LIB_SSL or reason is None or line is None:
        return None
    return _Site(vaddr=load.insn_vaddr, reason=reason, line=line)


def _ordered(sites: list[_Site], reasons: tuple[int, ...]) -> tuple[int, int] | None:
    """(first, last) line when ``reasons`` appear in this line order within the span."""
    lines = []
    for reason in reasons:
        found = sorted(s.line for s in sites if s.reason == reason)
        if not found:
            return None
        lines.append(found[0])
    if lines != sorted(lines) or lines[-1] - lines[0] > _MAX_SPAN_LINES:
        return None
    return lines[0], lines[-1]


def _one(found: list[int], what: str) -> int | NotLocated:
    if len(found) != 1:
        how = "none" if not found else f"{len(found)} candidates"
        return NotLocated(reason=f"static BoringSSL, functions not located ({what}: {how})")
    return found[0]


_WRITE_REASONS = (R_UNINITIALIZED, R_HANDSHAKE_FAILURE, R_BAD_LENGTH)


def _identify(
    image: ElfImage, by_entry: dict[int, list[_Site]]
) -> tuple[tuple[str, int], ...] | NotLocated:
    writes = [e for e, s in by_entry.items() if _ordered(s, _WRITE_REASONS)]
    write = _one(writes, "SSL_write")
    if isinstance(write, NotLocated):
        return write
    write_first = min(s.line for s in by_entry[write])
    impls = {e: span for e, s in by_entry.items()
             if e != write and (span := _ordered(s, (R_UNINITIALIZED, R_HANDSHAKE_FAILURE)))
             and span[1] < write_first}  # fmt: skip
    if not impls:
        return NotLocated(reason="static BoringSSL, functions not located (ssl_read_impl: none)")
    impl = max(impls, key=lambda e: impls[e][1])  # the closest above SSL_write
    impl_last = impls[impl][1]
    reads = _one([e for e, s in by_entry.items() if e not in (write, impl) and any(
        x.reason == R_SHOULD_NOT_HAVE_BEEN_CALLED and impl_last < x.line < write_first for x in s
    )], "SSL_read")  # fmt: skip
    if isinstance(reads, NotLocated):
        return reads
    calls = image.call_sites({write, reads, impl})
    if not calls[write] or not calls[reads]:
        return NotLocated(reason="static BoringSSL, functions not located (no direct caller)")
    if not _consumes_after(image, reads, calls[impl]):
        return NotLocated(
            reason="static BoringSSL, functions not located (SSL_read shape: SSL_peek not inlined)"
        )
    found = (("SSL_write", write), ("SSL_read", reads))
    shutdown = _shutdown(image, by_entry, exclude={write, reads, impl}, impl=impl)
    return found + ((("SSL_shutdown", shutdown),) if shutdown is not None else ())


def _shutdown(
    image: ElfImage, by_entry: dict[int, list[_Site]], *, exclude: set[int], impl: int
) -> int | None:
    """SSL_shutdown (optional: the close signal): UNINITIALIZED then APPLICATION_DATA_ON_SHUTDOWN,
    calling ssl_read_impl directly and called directly itself."""
    reasons = (R_UNINITIALIZED, R_APPLICATION_DATA_ON_SHUTDOWN)
    found = [e for e, s in by_entry.items() if e not in exclude and _ordered(s, reasons)]
    if len(found) != 1:
        return None
    calls = image.call_sites({found[0], impl})
    end = max(s.vaddr for s in by_entry[found[0]])
    if not calls[found[0]] or not any(found[0] < c < end for c in calls[impl]):
        return None
    return found[0]


def _consumes_after(image: ElfImage, entry: int, impl_calls: list[int]) -> bool:
    """SSL_read, not SSL_peek: after calling ssl_read_impl it stores the consumed span."""
    own = [c for c in impl_calls if entry < c < entry + 1024]
    if len(own) != 1:
        return False
    stores = 0
    for insn in decode(image.read(own[0], 512), own[0], limit=80):
        if insn.mnemonic in ("add", "mov") and _STORE.match(insn.op_str):
            stores += 1
        if insn.mnemonic == "int3":
            break
    return stores >= 2
