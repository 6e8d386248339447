"""Trailing baselines from a real store's hourly rollups."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from lumen_sniff.budgets.baseline import trailing_baseline
from lumen_sniff.budgets.settings import budget_from_mapping
from lumen_sniff.store import open_store
from tests.support.events import T0, make_event

HOUR = 3600 * 10**9
DAY = 24 * HOUR


def _b(scope: str, match: str = "") -> object:
    spec = {"name": "b", "scope": scope, "period": "day", "limit_usd": 1}
    if match:
        spec["match"] = match
    return budget_from_mapping(spec)


async def test_mean_of_the_same_hour_over_seven_days(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "db", retention_days=0)
    try:
        now = T0 + 8 * DAY + 30 * 60 * 10**9
        assert await trailing_baseline(store, _b("global"), now) is None  # no history yet
        for k in range(1, 9):
            at = now - k * DAY
            store.writer.submit(make_event(at, service="svc", cost_usd=Decimal("0.07")))
            store.writer.submit(make_event(at + 2 * HOUR, service="svc", cost_usd=Decimal("5")))
        store.writer.submit(make_event(now - 3 * DAY, service="other", cost_usd=Decimal("0.7")))
        await store.writer.flush()
        assert await trailing_baseline(store, _b("service", "svc"), now) == Decimal("0.07")
        assert await trailing_baseline(store, _b("global"), now) == Decimal("0.17")
        assert await trailing_baseline(store, _b("unit", "x.service"), now) is None
    finally:
        await store.close()
