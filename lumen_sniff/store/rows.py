"""UsageEvent ↔ ``events`` rows, money in pico-dollars, and hourly rollup deltas."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = [
    "EVENT_COLUMNS",
    "HOUR_NS",
    "INSERT_EVENT_SQL",
    "UPSERT_ROLLUP_SQL",
    "event_from_row",
    "event_to_row",
    "is_error",
    "pusd_from_usd",
    "rollup_deltas",
    "usd_from_pusd",
]

HOUR_NS = 3_600_000_000_000
"""Rollup bucket width."""

_PUSD_PER_USD = Decimal(10) ** 12
_ONE = Decimal(1)

EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "started_ns",
    "started_at",
    "provider",
    "api",
    "model",
    "stream",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_pusd",
    "usage_source",
    "pid",
    "process",
    "duration_ms",
    "ttft_ms",
    "api_key_id",
    "tenant",
    "host",
    "path",
    "complete",
    "error_type",
    "price_source",
    "provider_cost_usd",
    "exe",
    "container",
    "unit",
    "usage_flags",
    "extra",
    "error",
    "priced",
    "estimated",
)
"""Columns written for each event, in :func:`event_to_row` order."""

INSERT_EVENT_SQL = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
"""Insert one event; an id already stored is skipped (ids are deterministic)."""

UPSERT_ROLLUP_SQL = (
    f"INSERT INTO rollups (dim, bucket_ns, value, {', '.join(ROLLUP_SUMS)}) "
    f"VALUES (?, ?, ?, {', '.join('?' * len(ROLLUP_SUMS))}) "
    "ON CONFLICT (dim, bucket_ns, value) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS)
)


def pusd_from_usd(usd: Decimal) -> int:
    """Convert dollars to integer pico-dollars (half-even beyond 12 decimals)."""
    return int((usd * _PUSD_PER_USD).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def usd_from_pusd(pusd: int) -> Decimal:
    """Convert integer pico-dollars back to exact dollars."""
    return Decimal(pusd).scaleb(-12)


def is_error(event: UsageEvent) -> bool:
    """An error is an HTTP error, a call with no response, or an in-band API error."""
    return event.status >= 400 or event.status == 0 or event.error_type is not None


def event_to_row(e: UsageEvent) -> tuple[Any, ...]:
    """Return the ``events`` row for an event (columns as :data:`EVENT_COLUMNS`)."""
    cost = e.cost_usd
    return (
        e.id,
        e.started_ns,
        e.started_at,
        e.provider,
        e.api,
        e.model,
        int(e.stream),
        e.status,
        e.input_tokens,
        e.output_tokens,
        e.cache_read_tokens,
        e.cache_write_tokens,
        e.reasoning_tokens,
        None if cost is None else str(cost),
        None if cost is None else pusd_from_usd(cost),
        e.usage_source.value,
        e.pid,
        e.process,
        e.duration_ms,
        e.ttft_ms,
        e.api_key_id,
        e.tenant,
        e.host,
        e.path,
        int(e.complete),
        e.error_type,
        e.price_source,
        None if e.provider_cost_usd is None else str(e.provider_cost_usd),
        e.exe,
        e.container,
        e.unit,
        ",".join(e.usage_flags) or None,
        json.dumps(e.extra, sort_keys=True) if e.extra else None,
        int(is_error(e)),
        int(cost is not None),
        int(e.usage_source is UsageSource.ESTIMATED),
    )


def event_from_row(r: Sequence[Any]) -> UsageEvent:
    """Rebuild the event from a row selected as :data:`EVENT_COLUMNS` (flags ignored)."""
    return UsageEvent(
        id=r[0],
        started_ns=r[1],
        started_at=r[2],
        provider=r[3],
        api=r[4],
        model=r[5],
        stream=bool(r[6]),
        status=r[7],
        input_tokens=r[8],
        output_tokens=r[9],
        cache_read_tokens=r[10],
        cache_write_tokens=r[11],
        reasoning_tokens=r[12],
        cost_usd=None if r[13] is None else Decimal(r[13]),
        usage_source=UsageSource(r[15]),
        pid=r[16],
        process=r[17],
        duration_ms=r[18],
        ttft_ms=r[19],
        api_key_id=r[20],
        tenant=r[21],
        host=r[22],
        path=r[23],
        complete=bool(r[24]),
        error_type=r[25],
        price_source=r[26],
        provider_cost_usd=None if r[27] is None else Decimal(r[27]),
        exe=r[28],
        container=r[29],
        unit=r[30],
        usage_flags=tuple(r[31].split(",")) if r[31] else (),
        extra=json.loads(r[32]) if r[32] else {},
    )


def rollup_deltas(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Sum event rows into rollup upsert parameters (see :data:`UPSERT_ROLLUP_SQL`).

    Each event adds to its hour's ``total`` row and to one row per group
    dimension. Summing in Python first makes a 1,000-event batch a few dozen
    upserts instead of 7,000.
    """
    index = {name: i for i, name in enumerate(EVENT_COLUMNS)}
    dim_cols = [(dim, index[dim]) for dim in GROUP_DIMS]
    i_ns, i_cost = index["started_ns"], index["cost_pusd"]
    i_err, i_priced, i_est = index["error"], index["priced"], index["estimated"]
    i_tok = [index[c] for c in ROLLUP_SUMS[2:7]]
    acc: dict[tuple[str, int, str], list[int]] = {}
    for row in rows:
        bucket = row[i_ns] - row[i_ns] % HOUR_NS
        priced = row[i_priced]
        delta = (
            1,
            row[i_err],
            *(row[i] for i in i_tok),
            row[i_cost] or 0,
            priced,
            1 - priced,
            row[i_est],
        )
        keys = [("total", bucket, "")]
        keys.extend((dim, bucket, row[i] or "") for dim, i in dim_cols)
        for key in keys:
            sums = acc.get(key)
            if sums is None:
                acc[key] = list(delta)
            else:
                for j, v in enumerate(delta):
                    sums[j] += v
    return [(*key, *sums) for key, sums in acc.items()]
