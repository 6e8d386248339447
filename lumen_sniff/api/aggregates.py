"""Aggregate routes for the dashboard: filtered totals, series, breakdowns, cache savings.

Every route takes the same filters (:data:`lumen_sniff.api.params.Filter`: the time range, each
grouping dimension, a status), so one filter set in the dashboard's URL narrows
every panel alike. Answers are sums computed in the store
(:mod:`lumen_sniff.store.aggregates`), never raw events: their size depends on
the number of groups and buckets, not on the number of events.
"""

from __future__ import annotations

import json
import operator
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from lumen_sniff.api.params import Filter
from lumen_sniff.pricing.quote import PricerLike, quote
from lumen_sniff.serialize import iso_from_ns
from lumen_sniff.store import BUCKETS_NS, GROUP_DIMS, Store, Totals
from lumen_sniff.store.aggregates import Sums

__all__ = ["point_json", "router", "usage_json"]

router = APIRouter()

Dim = Annotated[
    str,
    Query(description=f"A grouping dimension: {', '.join(GROUP_DIMS)}."),
]
"""Checked against GROUP_DIMS (not a Literal) so a new dimension needs no edit here."""
Bucket = Literal["minute", "hour", "day"]
_MAX_POINTS = 20_000
"""Most buckets one /api/usage answer may span (per group)."""
_PER_MILLION = Decimal(1_000_000)
_PUSD_PER_USD = 10**12


def _check_dim(name: str, value: str) -> None:
    if value not in GROUP_DIMS:
        raise HTTPException(400, f"{name}: {value!r} is not one of {', '.join(GROUP_DIMS)}")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/api/summary", tags=["usage"])
async def summary(request: Request, f: Filter) -> dict[str, Any]:
    """Totals of the matching events: requests, errors, priced cost, tokens, unpriced, estimated."""
    cells = await _store(request).aggregate(f, None, None)
    return cells.get((0, ""), Totals()).to_dict()


@router.get("/api/usage", tags=["usage"])
async def usage(
    request: Request, f: Filter, group_by: Dim = "model", bucket: Bucket = "hour"
) -> Response:
    """Per-group time series: {"group_by", "bucket", "series": [{"group", "points"}]}.

    Series come busiest first. Points are sparse (no point for an empty bucket);
    a point's cost_usd is null when none of its calls was priced.
    """
    _check_dim("group_by", group_by)
    store = _store(request)
    width = BUCKETS_NS[bucket]
    # An open-ended range only spans from the oldest stored event.
    span_lo = f.since_ns if f.since_ns else (await store.oldest_ns() or f.until_ns)
    span_hi = min(f.until_ns, time.time_ns() + width)
    if span_hi > span_lo and (span_hi - span_lo) // width > _MAX_POINTS:
        raise HTTPException(
            400,
            f"bucket={bucket} over this range gives more than {_MAX_POINTS} points; "
            "use a shorter range or a larger bucket",
        )
    cells = await store.aggregate_sums(f, group_by, width)
    return Response(usage_json(group_by, bucket, cells), media_type="application/json")


def usage_json(group_by: str, bucket: str, cells: Mapping[tuple[int, str], Sums]) -> bytes:
    """The /api/usage body for ``cells`` (sums in ROLLUP_SUMS order), pre-encoded.

    Written as text with one %-format per point, from the store's tuples: a
    day of minute buckets is ~10,000 points, and a Totals, a dict and
    json.dumps per point cost more than the query (issue 12). The shape is
    json.dumps of the documented dicts (tests/unit/test_aggregates_json.py).
    """
    groups: dict[str, list[tuple[int, Sums]]] = {}
    for (t, group), sums in cells.items():
        points = groups.get(group)
        if points is None:
            groups[group] = [(t, sums)]
        else:
            points.append((t, sums))
    busiest = sorted(groups.items(), key=lambda kv: (-sum(p[1][0] for p in kv[1]), kv[0]))
    stamps: dict[int, str] = {}  # groups share bucket starts: format each once
    series = []
    for group, points in busiest:
        points.sort(key=_first)
        rows = []
        for t, sums in points:
            stamp = stamps.get(t)
            if stamp is None:
                stamp = stamps[t] = iso_from_ns(t)
            rows.append(point_json(stamp, sums))
        name = json.dumps(group or None, ensure_ascii=False)
        series.append(f'{{"group":{name},"points":[{",".join(rows)}]}}')
    head = json.dumps({"group_by": group_by, "bucket": bucket}, ensure_ascii=False)[:-1]
    return f'{head},"series":[{",".join(series)}]}}'.encode()


_first = operator.itemgetter(0)
_POINT = (
    '{"t":"%s","requests":%d,"errors":%d,"cost_usd":%s,"input_tokens":%d,"output_tokens":%d,'
    '"cache_read_tokens":%d,"cache_write_tokens":%d,"reasoning_tokens":%d,'
    '"unpriced_requests":%d,"estimated_requests":%d}'
)


def point_json(stamp: str, s: Sums) -> str:
    """One /api/usage point: ``{"t": stamp, **to_dict(null_cost_when_unpriced=True)}``.

    Same keys, order and number forms as json.dumps of to_dict (ints, float
    repr, null): tests/unit/test_aggregates_json.py checks they stay equal.
    """
    # s: requests, errors, 5 token sums, cost_pusd, priced, unpriced, estimated.
    cost = "null" if s[8] == 0 else repr(s[7] / _PUSD_PER_USD)
    return _POINT % (stamp, s[0], s[1], cost, s[2], s[3], s[4], s[5], s[6], s[9], s[10])


@router.get("/api/breakdown", tags=["usage"])
async def breakdown(request: Request, f: Filter, dim: Dim = "model") -> JSONResponse:
    """Totals per value of ``dim`` over the range: {"dim", "rows": [{"value", ...totals}]}.

    Rows come costliest first (then busiest); ``value`` is null for events
    without one. ``cost_usd`` is null when none of the row's calls was priced.
    """
    _check_dim("dim", dim)
    cells = await _store(request).aggregate(f, dim, None)
    rows = sorted(
        ((group, t) for (_, group), t in cells.items()),
        key=lambda gt: (-gt[1].cost_pusd, -gt[1].requests, gt[0]),
    )
    out = [
        {"value": group or None, **totals.to_dict(null_cost_when_unpriced=True)}
        for group, totals in rows
    ]
    return JSONResponse({"dim": dim, "rows": out})


def _savings(pricer: PricerLike, model: str, t: Totals, at_ns: int) -> dict[str, Any]:
    share = t.cache_read_tokens / t.input_tokens if t.input_tokens else None
    row: dict[str, Any] = {
        "model": model or None,
        "requests": t.requests,
        "input_tokens": t.input_tokens,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "cache_read_share": share,
        "priced": False,
        "saved_usd": None,
        "write_premium_usd": None,
        "net_saved_usd": None,
    }
    q = quote(pricer, "", model, at_ns) if model else None
    if q is None or q.per_million_usd is None:
        return row
    rates = q.per_million_usd
    saved = t.cache_read_tokens * (rates["input"] - rates["cache_read"]) / _PER_MILLION
    premium = t.cache_write_tokens * (rates["cache_write"] - rates["input"]) / _PER_MILLION
    row.update(
        priced=True,
        saved_usd=float(saved),
        write_premium_usd=float(premium),
        net_saved_usd=float(saved - premium),
    )
    return row


@router.get("/api/cache", tags=["usage"])
async def cache(request: Request, f: Filter) -> dict[str, Any]:
    """Cache use per model and the dollars it saved, at the prices the events get.

    Per model: the share of input tokens read from cache, ``saved_usd`` (cache
    reads * (input price - cache-read price)), ``write_premium_usd`` (cache
    writes * (cache-write price - input price)) and their difference
    ``net_saved_usd``; null for models nothing prices. Prices are the pricer's
    (genai-prices' cache prices, or overrides) at the end of the range.
    """
    pricer: PricerLike = request.app.state.pricer
    at_ns = min(f.until_ns, time.time_ns())
    cells = await _store(request).aggregate(f, "model", None)
    models = [_savings(pricer, group, t, at_ns) for (_, group), t in cells.items()]
    models.sort(key=lambda r: (-r["input_tokens"], r["model"] or ""))
    total_in = sum(r["input_tokens"] for r in models)
    total_read = sum(r["cache_read_tokens"] for r in models)
    priced = [r for r in models if r["priced"]]
    return {
        "at": iso_from_ns(at_ns),
        "models": models,
        "input_tokens": total_in,
        "cache_read_tokens": total_read,
        "cache_write_tokens": sum(r["cache_write_tokens"] for r in models),
        "cache_read_share": total_read / total_in if total_in else None,
        "saved_usd": sum(r["saved_usd"] for r in priced),
        "net_saved_usd": sum(r["net_saved_usd"] for r in priced),
        "unpriced_models": len(models) - len(priced),
    }
