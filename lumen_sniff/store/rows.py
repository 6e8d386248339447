"""UsageEvent ↔ ``events`` rows, money in pico-dollars, and the rollup bucket widths."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from lumen_sniff.eventfields import FIELD_TYPES, STORED_FIELDS
from lumen_sniff.model import UsageEvent, UsageSource

__all__ = [
    "DERIVED_COLUMNS",
    "EVENT_COLUMNS",
    "HOUR_NS",
    "INSERT_EVENT_SQL",
    "MINUTE_NS",
    "event_from_row",
    "event_to_row",
    "is_error",
    "pusd_from_usd",
    "usd_from_pusd",
]

HOUR_NS = 3_600_000_000_000
"""Hour rollup bucket width."""
MINUTE_NS = 60_000_000_000
"""Minute rollup bucket width."""

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
# bool needs none: sqlite3 binds it as the int it is.
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "Decimal | None": _decimal_text,
    "UsageSource": {s: s.value for s in UsageSource}.__getitem__,
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
# One C call reads every stored field (in column order); only the few fields
# with a codec are then converted, by position.
_GET_STORED = operator.attrgetter(*STORED_FIELDS)
_ENCODE = tuple(
    (i, enc) for i, name in enumerate(STORED_FIELDS) if (enc := _ENCODERS.get(FIELD_TYPES[name]))
)
_DECODE = tuple((name, _DECODERS.get(FIELD_TYPES[name])) for name in STORED_FIELDS)


def event_to_row(e: UsageEvent) -> tuple[Any, ...]:
    """Return the ``events`` row for an event (columns as :data:`EVENT_COLUMNS`)."""
    values = list(_GET_STORED(e))
    for i, enc in _ENCODE:
        values[i] = enc(values[i])
    cost = e.cost_usd
    values += (
        None if cost is None else pusd_from_usd(cost),
        int(is_error(e)),
        int(cost is not None),
        int(e.usage_source is UsageSource.ESTIMATED),
    )
    return tuple(values)


def event_from_row(row: Mapping[str, Any]) -> UsageEvent:
    """Rebuild the event from a row read by column name (derived columns ignored).

    Args:
        row: Column name to value; at least the stored fields' columns.
    """
    return UsageEvent(
        **{name: row[name] if dec is None else dec(row[name]) for name, dec in _DECODE}
    )
