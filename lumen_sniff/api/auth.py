"""Bearer-token authentication and the listen-address rule.

With no token the API serves everyone, so the daemon must then listen on
loopback only (:func:`check_listen`). With a token, every request except the
interactive docs (``/docs`` and the schema it loads) and the dashboard's page
and assets (``/``, ``/ui/...``), which hold no data, must
carry ``Authorization: Bearer <token>``; anything else gets a 401. The check is
a plain ASGI middleware so it also guards streaming responses (``/api/live``).
"""

from __future__ import annotations

import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from lumen_sniff.config import is_loopback
from lumen_sniff.errors import ConfigError

__all__ = ["OPEN_PATHS", "BearerAuth", "check_listen"]

OPEN_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/"})
"""Paths served without a token (no data: the docs and the dashboard's page)."""

OPEN_PREFIX = "/ui/"
"""The dashboard's static assets, also data-free."""


def check_listen(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token.

    Args:
        host: The address the API will listen on.
        token: The API token, if any.

    Raises:
        ConfigError: ``host`` is not loopback and ``token`` is empty.
    """
    if not token and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without an API token: set [api] token "
            "(or listen on 127.0.0.1)"
        )


class BearerAuth:
    """ASGI middleware: 401 unless the request carries the bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            await self._app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        # compare_digest: no timing hint about how much of the token matched.
        if secrets.compare_digest(given, self._expected):
            await self._app(scope, receive, send)
            return
        reason = "missing bearer token" if not given else "invalid bearer token"
        body = json.dumps({"detail": f"unauthorised: {reason}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="lumen-sniff"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
