"""HTTP API: FastAPI app, metrics and auth.

``create_app(store, status=..., token=...)`` builds the app (see
:mod:`lumen_sniff.api.app`); ``check_listen(host, token)`` refuses a
non-loopback address without a token.
"""

from __future__ import annotations

from lumen_sniff.api.app import create_app
from lumen_sniff.api.auth import check_listen

__all__ = ["check_listen", "create_app"]
