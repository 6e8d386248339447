"""The FastAPI application: routes, auth, error mapping, live feed and metrics.

``create_app`` wires the app to an open :class:`~lumen_sniff.store.Store`: it
registers the live feed and the metrics as commit listeners of the store's
writer, so both only ever show stored events. The app has no lifespan work;
the daemon owns the store and closes it (which also ends live streams).

Errors: every bad parameter is a 400 whose ``detail`` is one readable
sentence (FastAPI's own validation errors included), a missing or wrong token
is a 401, and a database failure is a 503, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lumen_sniff import __version__
from lumen_sniff.api.aggregates import router as aggregates_router
from lumen_sniff.api.auth import BearerAuth
from lumen_sniff.api.budgetmetrics import BudgetCollector
from lumen_sniff.api.budgets import router as budget_router
from lumen_sniff.api.dashboard import mount_dashboard
from lumen_sniff.api.live import LiveFeed
from lumen_sniff.api.metrics import Metrics
from lumen_sniff.api.params import reject_unknown_params
from lumen_sniff.api.routes import router
from lumen_sniff.budgets.service import BudgetService
from lumen_sniff.errors import StoreError
from lumen_sniff.pricing.quote import PricerLike
from lumen_sniff.store import Store

__all__ = ["create_app"]


def create_app(
    store: Store,
    *,
    status: Callable[[], Mapping[str, Any]],
    token: str | None,
    pricer: PricerLike | None = None,
    metrics_max_label_values: int = 50,
    live_max_clients: int = 64,
    budgets: BudgetService | None = None,
    web_dir: Path | None = None,
) -> FastAPI:
    """Build the HTTP API over an open store.

    Args:
        store: The open store; the app reads it and listens to its writer.
        status: Returns the capture half of /api/status (``ready``, ``dropped``
            by reason, backends…); called per request and per scrape.
        token: Bearer token every route but /docs requires; None serves all
            (then listen on loopback only: see :func:`check_listen`).
        pricer: Prices for /api/pricing; default a fresh
            :class:`lumen_sniff.pricing.prices.Pricer` without overrides.
        metrics_max_label_values: Distinct values per metric label before ``other``.
        live_max_clients: Concurrent /api/live streams.
        budgets: The daemon's budget service; without it the budget routes are not served.
        web_dir: The built dashboard served at ``/``; default the checkout's ``web/dist``.

    Returns:
        The app, with ``app.state.store``, ``.live`` and ``.metrics`` set.
    """
    app = FastAPI(
        title="lumen-sniff",
        version=__version__,
        description="LLM API usage and cost seen on this host.",
        dependencies=[Depends(reject_unknown_params)],
    )
    if pricer is None:
        from lumen_sniff.pricing.prices import Pricer

        pricer = Pricer()
    live = LiveFeed(max_subscribers=live_max_clients)
    metrics = Metrics(status, store.stats, max_values=metrics_max_label_values)
    store.writer.add_listener(live)
    store.writer.add_listener(metrics)
    app.state.store = store
    app.state.status = status
    app.state.live = live
    app.state.metrics = metrics
    app.state.pricer = pricer
    app.state.budgets = budgets
    if budgets is not None:
        metrics.registry.register(BudgetCollector(budgets.statuses))
    app.include_router(router)
    if budgets is not None:  # absent from the schema too: the dashboard hides its panel
        app.include_router(budget_router)
    app.include_router(aggregates_router)
    mount_dashboard(app, web_dir)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_error)
    if token:
        app.add_middleware(BearerAuth, token=token)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=400)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503)
