"""Budget routes: live state, create/delete/reset/resume, the manual kill switch, alerts.

Shapes:

* ``GET /api/budgets`` → ``{"budgets": [{name, scope, match, period, timezone,
  action, source, limit_usd, limit_tokens, limit_requests, thresholds, state,
  spent_usd, remaining_usd, percent, tokens, requests, unpriced_requests,
  estimated_requests, window_start, next_reset, forecast_usd, overshoot_usd,
  top_models, top_services, pids}], "manual_blocks": {key: reason},
  "enforcement": {...guard state...}, "log": [latest blocks, pauses, lifts]}``
* ``POST /api/budgets`` (a budget as in ``[[budgets]]``) → the budget, 201
* ``DELETE /api/budgets/{name}``, ``POST /api/budgets/{name}/reset``,
  ``POST /api/budgets/{name}/resume`` → ``{"ok": true}``
* ``POST /api/block`` / ``POST /api/unblock`` ``{"service": NAME}`` → ``{"ok": true}``
* ``POST /api/alerts/test`` → ``{"errors": [...]}``; ``GET /api/alerts`` → latest alerts
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel, Field

from lumen_sniff.budgets.model import BudgetStatus
from lumen_sniff.budgets.service import BudgetError, BudgetService, budget_spec
from lumen_sniff.serialize import iso_from_ns

__all__ = ["router", "status_dict"]

router = APIRouter(tags=["budgets"])


class ServiceIn(BaseModel):
    """Body of POST /api/block and /api/unblock."""

    service: str = Field(min_length=1, max_length=255, description="Service (process name).")
    reason: str = Field(default="manual kill switch", max_length=500)


def _service(request: Request) -> BudgetService:
    svc: BudgetService | None = getattr(request.app.state, "budgets", None)
    if svc is None:
        raise HTTPException(503, "budgets are not running in this daemon")
    return svc


def status_dict(s: BudgetStatus) -> dict[str, Any]:
    """One budget's status as JSON."""
    b = s.budget
    return {
        **budget_spec(b),
        "match": b.match,
        "limit_usd": float(b.limit_usd),
        "limit_tokens": b.limit_tokens,
        "limit_requests": b.limit_requests,
        "source": b.source,
        "state": s.state.value,
        "spent_usd": float(s.spent_usd),
        "remaining_usd": float(s.remaining_usd),
        "percent": round(s.percent, 3),
        "tokens": s.tokens,
        "requests": s.requests,
        "unpriced_requests": s.unpriced_requests,
        "estimated_requests": s.estimated_requests,
        "window_start": iso_from_ns(s.window_start_ns),
        "next_reset": None if s.next_reset_ns is None else iso_from_ns(s.next_reset_ns),
        "forecast_usd": float(s.forecast_usd),
        "overshoot_usd": float(s.overshoot_usd),
        "top_models": [{"model": m, "cost_usd": float(c)} for m, c in s.top_models],
        "top_services": [{"service": m, "cost_usd": float(c)} for m, c in s.top_services],
        "pids": sorted(s.pids),
    }


async def _run(op: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        await op()
    except BudgetError as exc:
        raise HTTPException(404 if "no budget named" in str(exc) else 400, str(exc)) from None
    return {"ok": True}


@router.get("/api/budgets")
async def budgets(request: Request) -> dict[str, Any]:
    """Every budget's live state, the manual kill switches, the guard, and the log."""
    svc = _service(request)
    log = await svc.enforcement_log(50)
    return {
        "budgets": [status_dict(s) for s in svc.statuses()],
        "manual_blocks": svc.manual(),
        "enforcement": svc.enforcer.status(),
        "log": [{**row, "at": iso_from_ns(row.pop("at_ns"))} for row in log],
    }


@router.post("/api/budgets", status_code=201)
async def create_budget(
    request: Request, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Create (or replace) a budget; the body is a ``[[budgets]]`` table as JSON."""
    svc = _service(request)
    try:
        b = await svc.create(body)
    except BudgetError as exc:
        raise HTTPException(400, str(exc)) from None
    return budget_spec(b)


@router.delete("/api/budgets/{name}")
async def delete_budget(request: Request, name: str) -> dict[str, Any]:
    """Delete a budget made through the API."""
    return await _run(lambda: _service(request).remove(name))


@router.post("/api/budgets/{name}/reset")
async def reset_budget(request: Request, name: str) -> dict[str, Any]:
    """Count from zero from now on; lifts its block or pause."""
    return await _run(lambda: _service(request).reset(name))


@router.post("/api/budgets/{name}/resume")
async def resume_budget(request: Request, name: str) -> dict[str, Any]:
    """Continue the processes a pause budget stopped."""
    return await _run(lambda: _service(request).resume(name))


@router.post("/api/block")
async def block(request: Request, body: Annotated[ServiceIn, Body()]) -> dict[str, Any]:
    """Manual kill switch: refuse a service's new connections to LLM endpoints."""
    return await _run(lambda: _service(request).block(body.service, on=True, reason=body.reason))


@router.post("/api/unblock")
async def unblock(request: Request, body: Annotated[ServiceIn, Body()]) -> dict[str, Any]:
    """Lift a manual kill switch."""
    return await _run(lambda: _service(request).block(body.service, on=False))


@router.post("/api/alerts/test")
async def alerts_test(request: Request) -> dict[str, Any]:
    """Send a test alert to the log and every webhook now."""
    return {"errors": await _service(request).test_alert()}


@router.get("/api/alerts")
async def alerts(request: Request) -> dict[str, Any]:
    """The latest alerts, newest first, with each delivery's state and attempts."""
    rows = await _service(request).recent_alerts(100)
    return {"alerts": [{**r, "created_at": iso_from_ns(r.pop("created_ns"))} for r in rows]}
