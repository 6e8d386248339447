"""BoringSSL linked into an executable with its symbols stripped (Bun, Claude Code).

No ``SSL_*`` symbol survives, so the row's judge looks inside the file: it
recognises BoringSSL by its strings and accepts the file only when
:mod:`lumen_sniff.capture.bpf.boringssl` locates *and verifies* ``SSL_read`` and
``SSL_write``; otherwise the locator's reason becomes the skip reason
("static BoringSSL, functions not located (...)") that status and doctor show.
The locator attaches at those addresses. ``SSL_shutdown`` serves as the close
function when it is located too (``SSL_free`` leaves no trace to find it by).

Both steps call :func:`~lumen_sniff.capture.bpf.boringssl.locate`, which caches by
build id: the second call reads only the file's headers.
"""

from __future__ import annotations

import re

from elftools.common.exceptions import ELFError

from lumen_sniff.capture.bpf import boringssl
from lumen_sniff.capture.bpf.elf import ElfFacts
from lumen_sniff.capture.bpf.elfscan import ElfImage
from lumen_sniff.capture.bpf.libraries.openssl import OPENSSL
from lumen_sniff.capture.bpf.tlslib import (
    NO_TLS_SYMBOLS,
    ArgConvention,
    AttachPoint,
    Probe,
    ProbeKind,
    TlsLibrary,
)

__all__ = ["BORINGSSL_STATIC"]

_E, _R = ProbeKind.ENTRY, ProbeKind.RETURN


def _judge(library: TlsLibrary, facts: ElfFacts) -> str:
    if facts.is_go or not facts.path or any(s in facts.symbols for s in OPENSSL.symbols):
        return NO_TLS_SYMBOLS  # Go has its own row; a file with symbols is OpenSSL's
    try:
        with ElfImage(facts.path) as image:
            if not boringssl.is_static_boringssl(image):
                return NO_TLS_SYMBOLS
    except (ELFError, OSError, ValueError):
        return NO_TLS_SYMBOLS
    found = boringssl.locate(facts.path)
    return found.reason if isinstance(found, boringssl.NotLocated) else ""


def _locate(library: TlsLibrary, path: str, facts: ElfFacts) -> tuple[AttachPoint, ...]:
    found = boringssl.locate(path)
    if isinstance(found, boringssl.NotLocated):
        raise ValueError(found.reason)  # the loader records it; nothing is attached
    addresses = dict(found.addresses)
    return tuple(
        AttachPoint(
            path=path,
            sym="",
            addr=addresses[probe.sym],
            fn_name=probe.fn_name,
            ret=probe.kind is _R,
            label=probe.label,
        )  # fmt: skip
        for probe in library.probes
        if probe.sym in addresses
    )


BORINGSSL_STATIC = TlsLibrary(
    name="boringssl-static",
    file_names=re.compile(r"(?!)"),  # only executables: nothing maps it as a library
    system_libraries=(),
    system_executables=(),
    symbols=("SSL_write", "SSL_read", "SSL_shutdown"),
    required=(("SSL_write",), ("SSL_read",)),
    probes=(
        Probe(sym="SSL_write", fn_name="lumen_enter_ssl_write", kind=_E),
        Probe(sym="SSL_write", fn_name="lumen_leave_ssl_write", kind=_R),
        Probe(sym="SSL_read", fn_name="lumen_enter_ssl_read", kind=_E),
        Probe(sym="SSL_read", fn_name="lumen_leave_ssl_read", kind=_R),
        # Frees the connection's state like SSL_free: the handler only reads the SSL*.
        Probe(sym="SSL_shutdown", fn_name="lumen_enter_ssl_free", kind=_E),
    ),
    close="SSL_shutdown",
    args=ArgConvention.SYSV,
    judge=_judge,
    locate=_locate,
)
"""``SSL_write``/``SSL_read(SSL*, buf, int)`` located without symbols, entry and return (the
same handlers as OpenSSL's); ``SSL_shutdown`` ends a connection. Keyed by the ``SSL*``."""
