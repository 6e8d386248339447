"""The TLS library table: one row per library, each in its own module.

To add a library, write ``libraries/<name>.py`` with one
:class:`~lumen_sniff.capture.bpf.tlslib.TlsLibrary` row (and its BPF handlers in
``bpf/lumen.bpf.c``), then add the row to :data:`TLS_LIBRARIES`. Discovery tries
rows in this order; the first that accepts a file hooks it.
"""

from __future__ import annotations

from lumen_sniff.capture.bpf.libraries.boringssl_static import BORINGSSL_STATIC
from lumen_sniff.capture.bpf.libraries.gnutls import GNUTLS
from lumen_sniff.capture.bpf.libraries.golang import GOLANG
from lumen_sniff.capture.bpf.libraries.openssl import OPENSSL
from lumen_sniff.capture.bpf.tlslib import TlsLibrary

__all__ = ["TLS_LIBRARIES", "TLS_SYMBOLS"]

TLS_LIBRARIES: tuple[TlsLibrary, ...] = (OPENSSL, GNUTLS, GOLANG, BORINGSSL_STATIC)
"""Every TLS library the capture hooks, in the order discovery tries them."""

TLS_SYMBOLS: tuple[str, ...] = tuple(
    dict.fromkeys(s for library in TLS_LIBRARIES for s in library.symbols)
)
"""Every function any row needs: what discovery looks up in a file's symbol tables."""
