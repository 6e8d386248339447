"""OpenSSL (and forks that keep its API: LibreSSL, wheel-bundled libssl, node's copy)."""

from __future__ import annotations

import re

from lumen_sniff.capture.bpf.tlslib import ArgConvention, Probe, ProbeKind, TlsLibrary

__all__ = ["OPENSSL"]

_E, _R = ProbeKind.ENTRY, ProbeKind.RETURN

OPENSSL = TlsLibrary(
    name="openssl",
    # OpenSSL's libssl (also wheel-bundled libssl-1a2b3c4d.so.3) and libraries
    # that embed it (Debian's libnode).
    file_names=re.compile(r"(?:^|/)(?:libssl(?:-[0-9a-f]+)?\.so[.0-9]*|libnode\.so[.0-9]*)$"),
    system_libraries=(
        "/usr/lib/*-linux-gnu/libssl.so.*",
        "/lib/*-linux-gnu/libssl.so.*",
        "/usr/lib64/libssl.so.*",
        "/lib64/libssl.so.*",
        "/usr/lib/libssl.so.*",
        "/usr/local/lib/libssl.so.*",
        "/usr/local/lib64/libssl.so.*",
    ),
    # NodeSource's node links OpenSSL statically (the exec tracepoint also
    # catches it, but a fast client could race it).
    system_executables=("/usr/bin/node", "/usr/local/bin/node", "/usr/bin/nodejs"),
    symbols=("SSL_write", "SSL_write_ex", "SSL_read", "SSL_read_ex", "SSL_free"),
    required=(("SSL_write", "SSL_write_ex"), ("SSL_read", "SSL_read_ex")),
    probes=(
        Probe(sym="SSL_write", fn_name="lumen_enter_ssl_write", kind=_E),
        Probe(sym="SSL_write", fn_name="lumen_leave_ssl_write", kind=_R),
        Probe(sym="SSL_write_ex", fn_name="lumen_enter_ssl_write_ex", kind=_E),
        Probe(sym="SSL_write_ex", fn_name="lumen_leave_ssl_write_ex", kind=_R),
        Probe(sym="SSL_read", fn_name="lumen_enter_ssl_read", kind=_E),
        Probe(sym="SSL_read", fn_name="lumen_leave_ssl_read", kind=_R),
        Probe(sym="SSL_read_ex", fn_name="lumen_enter_ssl_read_ex", kind=_E),
        Probe(sym="SSL_read_ex", fn_name="lumen_leave_ssl_read_ex", kind=_R),
        Probe(sym="SSL_free", fn_name="lumen_enter_ssl_free", kind=_E),
    ),
    close="SSL_free",
    args=ArgConvention.SYSV,
)
"""``SSL_write``/``SSL_read`` and their ``_ex`` forms, entry and return; ``SSL_free`` ends a
connection. Keyed by the ``SSL*`` with the tgid."""
