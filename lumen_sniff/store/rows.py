"""UsageEvent ↔ ``events`` rows, money in pico-dollars, and hourly rollup deltas."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from lumen_sniff.eventfields import FIELD_TYPES, STORED_FIELDS
from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = [
    "DERIVED_COLUMNS",
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

DERIVED_COLUMNS: tuple[str, ...] = ("cost_pusd", "error", "priced", "estimated")
"""Columns computed from the event for indexes and rollups; never read back."""

EVENT_COLUMNS: tuple[str, ...] = STORED_FIELDS + DERIVED_COLUMNS
"""Columns written for each event, in :func:`event_to_row` order: the event's stored
fields (from the UsageEvent dataclass), then the derived ones."""

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


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _json_text(value: dict[str, str]) -> str | None:
    return json.dumps(value, sort_keys=True) if value else None


def _json_dict(text: str | None) -> dict[str, str]:
    return json.loads(text) if text else {}


def _names_text(value: tuple[str, ...]) -> str | None:
    return ",".join(value) or None


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


# SQLite codecs by the field's annotation; a field whose type is not here is stored as is.
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "bool": int,
    "Decimal | None": _decimal_text,
    "UsageSource": lambda source: source.value,
    "dict[str, str]": _json_text,
    "tuple[str, ...]": _names_text,
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "Decimal | None": _decimal,
    "UsageSource": UsageSource,
    "dict[str, str]": _json_dict,
    "tuple[str, ...]": _names,
}
_ENCODE = tuple((name, _ENCODERS.get(FIELD_TYPES[name])) for name in STORED_FIELDS)
_DECODE = tuple((name, _DECODERS.get(FIELD_TYPES[name])) for name in STORED_FIELDS)


def event_to_row(e: UsageEvent) -> tuple[Any, ...]:
    """Return the ``events`` row for an event (columns as :data:`EVENT_COLUMNS`)."""
    cost = e.cost_usd
    return (
        *[getattr(e, name) if enc is None else enc(getattr(e, name)) for name, enc in _ENCODE],
        None if cost is None else pusd_from_usd(cost),
        int(is_error(e)),
        int(cost is not None),
        int(e.usage_source is UsageSource.ESTIMATED),
    )


def event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    """Rebuild the event from a row read by column name (derived columns ignored).

    Args:
        row: Column name to value; at least the stored fields' columns.
    """
    return UsageEvent(
        **{name: row[name] if dec is None else dec(row[name]) for name, dec in _DECODE}
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
