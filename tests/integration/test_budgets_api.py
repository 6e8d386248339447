"""Budget routes, metrics and the alert outbox against a real SQLite file, a real
uvicorn server and a real webhook receiver, all on 127.0.0.1.

The budget service gets a clock that runs at real speed from a fixed past
instant, so the stored test events fall in its windows and backoff still elapses.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from lumen_sniff.api import create_app
from lumen_sniff.budgets.service import BudgetService
from lumen_sniff.budgets.settings import BudgetSettings, Webhook, budget_from_mapping
from lumen_sniff.model import UsageEvent
from lumen_sniff.store import EventFilter, Store, open_store
from tests.support.events import T0, make_event
from tests.support.webhook import WebhookReceiver

CONFIG_BUDGET = budget_from_mapping(
    {"name": "cfg", "scope": "model", "match": "gpt-4o-mini", "period": "day", "limit_usd": 1}
)


class _Observer:
    """Hands committed events to the service (the daemon hands them over from its pump)."""

    def __init__(self, svc: BudgetService) -> None:
        self._svc = svc

    def committed(self, events: list[UsageEvent]) -> None:
        self._svc.observe(events)

    def closed(self) -> None:
        pass


class Harness:
    """Store + budget service + app + uvicorn in a background loop."""

    def __init__(self, db: Path, settings: BudgetSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        origin = time.time_ns()
        clock = lambda: T0 + 3600 * 10**9 + time.time_ns() - origin  # noqa: E731
        self.store: Store = self.call(open_store(db, retention_days=0))
        store = self.store
        self.svc = BudgetService(
            settings,
            store.budgets,
            lambda since: store.export(EventFilter(since_ns=since)),
            clock=clock,
        )
        self.call(self.svc.start())
        store.writer.add_listener(_Observer(self.svc))
        app = create_app(
            store, status=lambda: {"ready": True, "dropped": {}}, token=None, budgets=self.svc
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
        )
        self.server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def add(self, *costs: str) -> None:
        async def submit() -> None:
            for i, cost in enumerate(costs):
                self.store.writer.submit(
                    make_event(
                        T0 + 60 * 10**9 + i, cost_usd=Decimal(cost), host="127.0.0.1", pid=None
                    )
                )
            await self.store.writer.flush()

        self.call(submit())

    def budgets(self) -> dict[str, dict[str, Any]]:
        data = self.http.get("/api/budgets").json()
        return {b["name"]: b for b in data["budgets"]}

    def stop(self) -> None:
        self.http.close()
        self.call(self.store.writer.flush())
        self.call(self.svc.stop())
        self.call(self.store.close())
        self.server.should_exit = True
        self._serving.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _wait(pred: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_api_budgets_crud_reset_metrics_and_restart(tmp_path: Path) -> None:
    settings = BudgetSettings(budgets=(CONFIG_BUDGET,))
    h = Harness(tmp_path / "db", settings)
    try:
        r = h.http.post(
            "/api/budgets",
            json={"name": "all", "period": "month", "limit_usd": "0.5", "limit_requests": 10},
        )
        assert r.status_code == 201, r.text
        bad = h.http.post("/api/budgets", json={"name": "x", "period": "fortnight", "limit_usd": 1})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("period:")
        assert h.http.delete("/api/budgets/cfg").status_code == 400  # config budgets stay
        assert h.http.delete("/api/budgets/nope").status_code == 404
        h.add("0.1", "0.2", "0.25")
        got = h.budgets()
        assert got["all"]["spent_usd"] == pytest.approx(0.55) and got["all"]["requests"] == 3
        assert got["all"]["state"] == "exceeded" and got["all"]["overshoot_usd"] == pytest.approx(
            0.05
        )
        assert got["cfg"]["state"] == "warning" and got["cfg"]["source"] == "config"
        metrics = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(h.http.get("/metrics").text)
            for s in fam.samples
            if s.name.startswith("lumen_budget")
        }
        assert metrics[("lumen_budget_spent_usd", (("budget", "all"),))] == pytest.approx(0.55)
        assert metrics[("lumen_budget_limit_usd", (("budget", "all"),))] == 0.5
        assert metrics[("lumen_budget_state", (("budget", "all"), ("state", "exceeded")))] == 1
        assert metrics[("lumen_budget_state", (("budget", "all"), ("state", "ok")))] == 0
    finally:
        h.stop()
    h = Harness(tmp_path / "db", settings)  # a restart: API budget and spend are back
    try:
        assert h.budgets()["all"]["spent_usd"] == pytest.approx(0.55)
        assert h.http.post("/api/budgets/all/reset").json() == {"ok": True}
        assert h.budgets()["all"]["spent_usd"] == 0
        assert h.http.delete("/api/budgets/all").json() == {"ok": True}
        assert set(h.budgets()) == {"cfg"}
    finally:
        h.stop()
    h = Harness(tmp_path / "db", settings)
    try:
        assert set(h.budgets()) == {"cfg"}  # deleted stays deleted
    finally:
        h.stop()


def test_outbox_retries_and_a_restart_neither_loses_nor_repeats(
    tmp_path: Path, hook: WebhookReceiver
) -> None:
    down = WebhookReceiver(fail_first=10**6)  # answers 500 to everything
    budget = budget_from_mapping({"name": "b", "period": "day", "limit_usd": 1})
    hooks = (Webhook(url=down.url + "/a"), Webhook(url=hook.url + "/b", format="slack"))
    h = Harness(tmp_path / "db", BudgetSettings(budgets=(budget,), webhooks=hooks))
    try:
        h.add("0.3", "0.3")  # 60%: one alert
        _wait(lambda: len(hook.bodies("/b")) == 1)
        assert "reached 50%" in hook.bodies("/b")[0]["text"]
        alerts = h.http.get("/api/alerts").json()["alerts"]
        assert alerts[0]["threshold"] == 50 and "webhook:0=pending" in alerts[0]["deliveries"]
    finally:
        h.stop()
    down.close()
    # The first webhook comes back (same URL, now answering): the pending alert
    # is delivered once after the restart, and the one already sent is not resent.
    fixed = (Webhook(url=hook.url + "/a"), hooks[1])
    h = Harness(tmp_path / "db", BudgetSettings(budgets=(budget,), webhooks=fixed))
    try:
        _wait(lambda: len(hook.bodies("/a")) == 1)
        assert hook.bodies("/a")[0]["threshold"] == 50
        assert len(hook.bodies("/b")) == 1
        h.add("0.25")  # 85%: the 80% alert, once per destination
        _wait(lambda: len(hook.bodies("/a")) == 2 and len(hook.bodies("/b")) == 2)
        errors = h.http.post("/api/alerts/test").json()["errors"]
        assert errors == []
        assert hook.bodies("/a")[-1]["kind"] == "test"
    finally:
        h.stop()
    posts = [
        (p, b.get("threshold"), b.get("kind"))
        for p, _, b in hook.posts
        if b.get("kind") != "test" and "(alerts test)" not in b.get("text", "")
    ]
    assert sorted(posts) == [
        ("/a", 50, "threshold"),
        ("/a", 80, "threshold"),
        ("/b", None, None),
        ("/b", None, None),
    ]


def test_cli_budget_commands(tmp_path: Path, hook: WebhookReceiver) -> None:
    import os
    import subprocess
    import sys

    from tests.support.bpfcap import REPO

    settings = BudgetSettings(webhooks=(Webhook(url=hook.url + "/t"),))
    h = Harness(tmp_path / "db", settings)
    url = str(h.http.base_url).rstrip("/")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lumen_sniff", *args, "--api", url],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
        )

    try:
        add = cli(
            "budgets",
            "add",
            "--name",
            "m",
            "--scope",
            "model",
            "--match",
            "gpt-4o-mini",
            "--period",
            "24h",
            "--limit-usd",
            "0.1",
            "--thresholds",
            "90",
            "--action",
            "block",
        )
        assert add.returncode == 0, add.stderr
        h.add("0.05")
        listed = cli("budgets", "list")
        assert listed.returncode == 0 and "model=gpt-4o-mini" in listed.stdout, listed.stderr
        assert "warning" not in listed.stdout and " ok " in listed.stdout
        assert (
            cli("budgets", "add", "--name", "x", "--period", "soon", "--limit-usd", "1")
            .stderr.strip()
            .endswith(
                "period: period must be hour, day, week, month or "
                "a rolling width like 10m, 24h, 7d; got 'soon'"
            )
        )
        assert cli("budgets", "reset", "m").returncode == 0
        assert cli("alerts", "test").stdout.strip() == "test alert sent"
        assert hook.bodies("/t")[-1]["kind"] == "test"
        assert cli("budgets", "remove", "m").returncode == 0
        assert "no budget named 'm'" in cli("budgets", "reset", "m").stderr
    finally:
        h.stop()
