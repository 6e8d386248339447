"""The JSON, CSV and SSE routes. Shapes are documented per route and fixed.

Times in answers are ISO 8601 UTC strings; money is a JSON number in USD
(computed exactly in the store, then converted once). Every route reads the
:class:`~lumen_sniff.store.Store` and other dependencies from ``app.state``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from lumen_sniff import __version__
from lumen_sniff.api.live import LiveFeed
from lumen_sniff.api.metrics import CONTENT_TYPE, Metrics
from lumen_sniff.api.params import Filter, parse_time, time_range
from lumen_sniff.pricing.quote import PricerLike, quote
from lumen_sniff.serialize import csv_header, event_to_csv_row, event_to_dict, iso_from_ns
from lumen_sniff.store import EventFilter, Lap, Store

__all__ = ["router"]

router = APIRouter()

Since = Annotated[str | None, Query(description="ISO 8601 time, 'now', or an age: 30m, 24h, 7d.")]
Until = Annotated[str | None, Query(description="Same forms as since; default: no upper bound.")]


class LapIn(BaseModel):
    """Body of POST /api/laps."""

    name: str = Field(min_length=1, max_length=200, description="Name of the lap to start.")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/api/status", tags=["status"])
async def status(request: Request) -> dict[str, Any]:
    """Readiness, version, capture state (from the daemon) and store state."""
    status_fn: Callable[[], Mapping[str, Any]] = request.app.state.status
    try:
        capture = dict(status_fn())
    except Exception as exc:  # the daemon's callable; /api/status must still answer
        capture = {"ready": False, "error": f"status unavailable: {exc}"}
    live: LiveFeed = request.app.state.live
    answer: dict[str, Any] = {
        "ready": bool(capture.get("ready", False)),
        "version": __version__,
        "export": capture.pop("export", {}),  # export sink name → its runner's stats
        "export_unavailable": capture.pop("export_unavailable", {}),
        "capture": capture,
        "store": _store(request).stats(),
        "api": live.stats(),
    }
    # Only a capture that watches for blind spots reports them; "none seen" ([]) and
    # "not watched" (absent) differ, and the dashboard shows the gauge for the first.
    if "unseen" in capture:
        answer["unseen"] = capture["unseen"]
    return answer


@router.get("/api/events", tags=["events"])
async def events(
    request: Request,
    f: Filter,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> JSONResponse:
    """The newest events matching every given filter, newest first: {"events": [...]}."""
    rows = await _store(request).events(f, limit)
    # JSONResponse directly: FastAPI's generic encoder costs more than the query.
    return JSONResponse({"events": [event_to_dict(e) for e in rows]})


@router.get("/api/live", tags=["events"])
async def live(request: Request) -> StreamingResponse:
    """Server-sent events: one ``usage`` event per stored event, as it is committed."""
    feed: LiveFeed = request.app.state.live
    sub = feed.subscribe()
    if sub is None:
        raise HTTPException(503, "live feed unavailable: too many clients or shutting down")
    return StreamingResponse(
        sub.sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _lap_dict(lap: Lap) -> dict[str, Any]:
    return {
        "name": lap.name,
        "started_at": iso_from_ns(lap.started_ns),
        "ended_at": None if lap.ended_ns is None else iso_from_ns(lap.ended_ns),
        **lap.totals.to_dict(),
    }


@router.post("/api/laps", status_code=201, tags=["laps"])
async def start_lap(request: Request, body: Annotated[LapIn, Body()]) -> dict[str, Any]:
    """Start a lap now; the running lap, if any, ends now."""
    return _lap_dict(await _store(request).start_lap(body.name))


@router.post("/api/laps/end", tags=["laps"])
async def end_lap(request: Request) -> dict[str, Any]:
    """End the running lap now: {"ended": true}, or {"ended": false} when none ran."""
    return {"ended": await _store(request).end_lap()}


@router.get("/api/laps", tags=["laps"])
async def laps(request: Request) -> dict[str, Any]:
    """Every lap, oldest first, with its totals (a running lap has ended_at null)."""
    return {"laps": [_lap_dict(lap) for lap in await _store(request).laps()]}


@router.get("/api/export.csv", tags=["events"], response_class=StreamingResponse)
async def export_csv(request: Request, since: Since = None, until: Until = None) -> Response:
    """Every event in the range as CSV, oldest first; money as exact decimals."""
    lo, hi = time_range(since, until)
    store = _store(request)

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(csv_header())
        count = 0
        async for event in store.export(EventFilter(since_ns=lo, until_ns=hi)):
            writer.writerow(event_to_csv_row(event))
            count += 1
            if count % 1000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="lumen-events.csv"'},
    )


@router.get("/api/pricing", tags=["pricing"])
async def pricing(
    request: Request,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    provider: Annotated[str, Query(max_length=100)] = "",
    at: Annotated[str | None, Query(description="Price at this time (default now).")] = None,
) -> dict[str, Any]:
    """The price that would be applied to ``model`` and its source, per million tokens."""
    now = time.time_ns()
    at_ns = now if at is None else parse_time("at", at, now)
    pricer: PricerLike = request.app.state.pricer
    q = quote(pricer, provider, model, at_ns)
    rates = q.per_million_usd
    return {
        "provider": provider or None,
        "model": model,
        "at": iso_from_ns(at_ns),
        "priced": q.priced,
        "source": q.source,
        "per_million_usd": None if rates is None else {k: float(v) for k, v in rates.items()},
    }


@router.get("/metrics", tags=["status"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus exposition (see lumen_sniff.api.metrics for names and labels)."""
    m: Metrics = request.app.state.metrics
    return Response(m.render(), media_type=CONTENT_TYPE)
