"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

Playwright's own browser download is never used (it needs the internet): the
browser is ``/usr/bin/chromium``. Each page records console errors, uncaught
exceptions and failed requests so a test can assert there were none.
Screenshots go to ``$LUMEN_ARTIFACTS`` (default ``<tmp>/lumen-sniff-artifacts``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

__all__ = ["CHROMIUM", "Watched", "artifacts_dir", "chromium", "open_page"]

CHROMIUM = Path("/usr/bin/chromium")


def artifacts_dir() -> Path:
    """Where screenshots are saved (created on first use)."""
    path = Path(
        os.environ.get("LUMEN_ARTIFACTS") or Path(tempfile.gettempdir()) / "lumen-sniff-artifacts"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch Debian's chromium headless (no sandbox: the tests run as root).

    Fails under CI=true or ``make test`` (skips elsewhere) when the browser or
    the built dashboard (``make setup``) is missing.
    """
    from lumen_sniff.api.dashboard import DEFAULT_WEB_DIR
    from tests.conftest import require_or_skip

    require_or_skip(CHROMIUM.exists(), f"{CHROMIUM} missing (apt-get install chromium)")
    require_or_skip((DEFAULT_WEB_DIR / "index.html").exists(), "dashboard not built: make setup")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what went wrong on it."""

    page: Page
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def loads(self) -> int:
        """How many times the dashboard finished loading its panels."""
        return int(self.page.evaluate("Number(document.body.dataset.loaded || 0)"))

    def wait_loaded(self, after: int = 0, timeout_ms: float = 15_000) -> None:
        """Wait until the panels have loaded more than ``after`` times."""
        self.page.wait_for_function(
            "n => Number(document.body.dataset.loaded || 0) > n", arg=after, timeout=timeout_ms
        )

    def gauge(self, name: str) -> float:
        """The exact value behind a header gauge (its data-value)."""
        return float(self.page.get_attribute(f"#g-{name}", "data-value") or "nan")


@contextmanager
def open_page(browser: Browser, url: str, **context: Any) -> Iterator[Watched]:
    """A fresh context (own session storage) and page at ``url``, watched for errors."""
    # bypass_csp: the page forbids eval, which Playwright's wait_for_function uses.
    ctx = browser.new_context(bypass_csp=True, **context)
    page = ctx.new_page()
    watched = Watched(page)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: watched.requests.append(r.url))

    def failed(request: Any) -> None:
        # The live stream is cut when the page closes; that is not a failure.
        if request.failure != "net::ERR_ABORTED" or "/api/live" not in request.url:
            watched.failed.append(f"{request.url}: {request.failure}")

    page.on("requestfailed", failed)
    page.goto(url)
    try:
        yield watched
    finally:
        ctx.close()
