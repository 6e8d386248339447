"""GnuTLS (``libgnutls.so.30``): what libcurl-gnutls, gnutls-cli, wget and others use."""

from __future__ import annotations

import re

from lumen_sniff.capture.bpf.tlslib import ArgConvention, Probe, ProbeKind, TlsLibrary

__all__ = ["GNUTLS"]

_E, _R = ProbeKind.ENTRY, ProbeKind.RETURN

GNUTLS = TlsLibrary(
    name="gnutls",
    file_names=re.compile(r"(?:^|/)libgnutls\.so\.30[.0-9]*$"),
    system_libraries=(
        "/usr/lib/*-linux-gnu/libgnutls.so.30",
        "/lib/*-linux-gnu/libgnutls.so.30",
        "/usr/lib64/libgnutls.so.30",
        "/usr/lib/libgnutls.so.30",
    ),
    system_executables=(),
    symbols=("gnutls_record_send", "gnutls_record_recv", "gnutls_deinit"),
    required=(("gnutls_record_send",), ("gnutls_record_recv",)),
    probes=(
        # (session, data, size) -> ssize_t: the shape of SSL_write/SSL_read, so the
        # same BPF handlers serve (see bpf/lumen.bpf.c).
        Probe(sym="gnutls_record_send", fn_name="lumen_enter_gnutls_record_send", kind=_E),
        Probe(sym="gnutls_record_send", fn_name="lumen_leave_gnutls_record_send", kind=_R),
        Probe(sym="gnutls_record_recv", fn_name="lumen_enter_gnutls_record_recv", kind=_E),
        Probe(sym="gnutls_record_recv", fn_name="lumen_leave_gnutls_record_recv", kind=_R),
        Probe(sym="gnutls_deinit", fn_name="lumen_enter_gnutls_deinit", kind=_E),
    ),
    close="gnutls_deinit",
    args=ArgConvention.SYSV,
)
"""``gnutls_record_send``/``gnutls_record_recv``, entry and return; ``gnutls_deinit`` ends a
connection. Keyed by the ``gnutls_session_t`` with the tgid."""
