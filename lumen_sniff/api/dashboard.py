"""The web dashboard: its page at ``/`` and its built assets under ``/ui/``.

The page and its scripts are a shell that holds no data (like ``/docs``), so
they are served without a token; every number it shows comes from the
``/api/...`` routes, which keep the API's auth rule. With a token configured,
the page asks for it once, keeps it in the tab's session storage and sends it
as ``Authorization: Bearer``; it never goes into a URL.

The assets are built by ``make setup`` (``web/`` → ``web/dist/``, the chart
library from the npm lockfile). When they are missing, ``/`` says what to run
instead of failing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["DEFAULT_WEB_DIR", "mount_dashboard"]

DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"
"""Where ``make setup`` puts the built dashboard (a source checkout)."""

_HEADERS = {
    # Nothing from elsewhere: scripts, styles, fonts, images and API calls are local.
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lumen-sniff</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>lumen-sniff</h1>
<p>The dashboard's assets are not built ({where} is missing).
Run <code>make setup</code> in the lumen-sniff checkout, then reload this page.</p>
<p>The API works without them: <a href="/docs">/docs</a>.</p>
</body></html>
"""


def mount_dashboard(app: FastAPI, web_dir: Path | None = None) -> None:
    """Serve the dashboard at ``/`` and its assets at ``/ui/`` from ``web_dir``.

    Args:
        app: The API app.
        web_dir: The built assets (``index.html`` and the rest); default
            :data:`DEFAULT_WEB_DIR`. Checked per request, so building them
            while the daemon runs is enough.
    """
    root = web_dir or DEFAULT_WEB_DIR

    async def index() -> Response:
        page = root / "index.html"
        if not page.is_file():
            return HTMLResponse(_NOT_BUILT.format(where=root), status_code=503, headers=_HEADERS)
        return FileResponse(page, media_type="text/html", headers=_HEADERS)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/ui", StaticFiles(directory=root, check_dir=False), name="ui")
