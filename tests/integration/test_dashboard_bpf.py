"""The dashboard follows a real call end to end: openai SDK → TLS stand-in → eBPF → daemon → page.

The daemon (``lumen-sniff run --capture bpf``, as in test_daemon) serves the
page, which is open in chromium before the call is made: the call must reach
its live feed and its totals without a reload. Other processes on the machine
may make calls too, so the test finds its own by the cgroup unit.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import require_or_skip
from tests.support.bpfcap import Server, bpf_ready
from tests.support.browser import artifacts_dir, chromium, open_page
from tests.support.daemonproc import (
    Daemon,
    Scope,
    client_result,
    run_client,
    start_daemon,
    stop_daemon,
)

pytestmark = [pytest.mark.bpf, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "none.toml").write_text("")
        running = start_daemon(path / "state" / "lumen.db", path / "daemon.log")
        yield running
        if running.proc.poll() is None:
            stop_daemon(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _stored(daemon: Daemon, unit: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = [e for e in daemon.api("/api/events", limit=200)["events"] if e["unit"] == unit]
        if mine:
            return mine
        time.sleep(0.1)
    return []


def test_a_real_sdk_call_appears_in_feed_and_totals_without_reload(
    browser: Browser, daemon: Daemon, standin: Server
) -> None:
    with open_page(browser, daemon.url + "/#range=1h") as w:
        w.wait_loaded()
        w.page.wait_for_selector("#conn.live")
        before = w.gauge("requests")
        scope = Scope()
        try:
            client = client_result(run_client(standin, scope, "openai_chat"))
            stored = _stored(daemon, scope.name)
        finally:
            scope.remove()
        assert len(stored) == 1, daemon.log.read_text()[-2000:]
        (event,) = stored
        assert event["input_tokens"] == client["usage"]["input_tokens"]
        # Stored means pushed to /api/live: from here the page has 2 s.
        row = w.page.locator(f"#feed tbody tr[data-id='{event['id']}']")
        expect(row).to_have_count(1, timeout=2000)
        w.page.wait_for_function(
            "n => Number(document.querySelector('#g-requests').dataset.value) > n",
            arg=before,
            timeout=2000,
        )
        expect(row.locator("td").nth(3)).to_have_text(f"{event['input_tokens']:,}")
        row.click()
        expect(w.page.locator("#event-dialog")).to_contain_text(event["id"])
        w.page.screenshot(path=artifacts_dir() / "dashboard-live-bpf.png", full_page=True)
        assert w.errors == [] and w.failed == []
