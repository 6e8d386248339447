"""HTTP API: FastAPI app, metrics and auth.

``create_app(store, status=..., token=...)`` builds the app (see
:mod:`lumen_sniff.api.app`); ``check_listen(host, token)`` refuses a
non-loopback address without a token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lumen_sniff.api.auth import check_listen

if TYPE_CHECKING:
    from lumen_sniff.api.app import create_app

__all__ = ["check_listen", "create_app"]


def __getattr__(name: str) -> object:
    # FastAPI and pydantic take about a third of a second to import: the daemon
    # imports them while its capture starts in another thread, not before.
    if name == "create_app":
        from lumen_sniff.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
