"""Trailing spend baselines for anomaly alerts, read from the store's hourly rollups.

A budget's baseline is its scope's mean spend in the same clock hour on each of
the last 7 days. It exists only when the database holds at least 7 days of
history (otherwise every new workload would look anomalous), and only for
scopes the rollups are kept by: global, provider, model, service,
container, api_key_id and tenant (not unit).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from lumen_sniff.budgets.model import SERVICE_COLUMN, Budget, ScopeKind
from lumen_sniff.store.queries import Series, Totals

__all__ = ["BASELINE_DAYS", "StoreLike", "trailing_baseline"]

BASELINE_DAYS = 7
_HOUR_NS = 3600 * 10**9
_DAY_NS = 24 * _HOUR_NS
_DIMS = {
    ScopeKind.PROVIDER: "provider",
    ScopeKind.MODEL: "model",
    ScopeKind.SERVICE: SERVICE_COLUMN,
    ScopeKind.CONTAINER: "container",
    ScopeKind.API_KEY_ID: "api_key_id",
    ScopeKind.TENANT: "tenant",
}


class StoreLike(Protocol):
    """What the baseline reads."""

    async def oldest_ns(self) -> int | None: ...

    async def summary(self, since_ns: int = 0, until_ns: int = ...) -> Totals: ...

    async def usage(
        self, group_by: str, bucket: str, since_ns: int = 0, until_ns: int = ...
    ) -> list[Series]: ...


async def trailing_baseline(store: StoreLike, budget: Budget, now_ns: int) -> Decimal | None:
    """Mean USD per hour of ``budget``'s scope at this hour over the last 7 days, or None."""
    oldest = await store.oldest_ns()
    if oldest is None or oldest > now_ns - BASELINE_DAYS * _DAY_NS:
        return None
    dim = _DIMS.get(budget.scope)
    if budget.scope is not ScopeKind.GLOBAL and dim is None:
        return None
    hour = now_ns - now_ns % _HOUR_NS
    total = Decimal(0)
    for k in range(1, BASELINE_DAYS + 1):
        lo = hour - k * _DAY_NS
        if dim is None:
            total += (await store.summary(lo, lo + _HOUR_NS)).cost_usd
            continue
        for series in await store.usage(dim, "hour", lo, lo + _HOUR_NS):
            if series.group == budget.match:
                total += sum((t.cost_usd for t in series.points.values()), Decimal(0))
    return total / BASELINE_DAYS
