"""UsageEvent ↔ JSON-safe dicts and CSV rows: the one shape every sink shares.

The API (``/api/events``, ``/api/live``), ``lumen-sniff replay --json`` and the
CSV export all print events through this module, so they always agree. The
public fields (:data:`EVENT_FIELDS`) come first, in that order, then the extras
(:data:`EXTRA_FIELDS`); both lists come from the UsageEvent dataclass's field
metadata (:mod:`lumen_sniff.eventfields`).

Money: in JSON, ``cost_usd`` is a number or null (null = unpriced, never 0); in
CSV it is the exact ``Decimal`` text, since CSV readers take it as written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from lumen_sniff.eventfields import EXTRA_FIELDS, PUBLIC_FIELDS, SHOWN_FIELDS
from lumen_sniff.model import UsageEvent, UsageSource

__all__ = [
    "ALL_FIELDS",
    "EVENT_FIELDS",
    "EXTRA_FIELDS",
    "csv_header",
    "event_from_dict",
    "event_to_csv_row",
    "event_to_dict",
    "iso_from_ns",
]

EVENT_FIELDS: tuple[str, ...] = PUBLIC_FIELDS
"""The public event fields, in order (from the UsageEvent dataclass's field metadata)."""

ALL_FIELDS: tuple[str, ...] = SHOWN_FIELDS
"""Every serialised field, in output order (also the CSV header)."""

_MONEY_FIELDS = frozenset({"cost_usd", "provider_cost_usd"})


def event_to_dict(event: UsageEvent) -> dict[str, object]:
    """Return the event as a JSON-safe dict with :data:`ALL_FIELDS` as its keys, in order.

    Args:
        event: The event to serialise.

    Returns:
        A dict ``json.dumps`` accepts as is: money as float or None, the usage
        source as its string value.
    """
    out: dict[str, object] = {}
    for name in ALL_FIELDS:
        value = getattr(event, name)
        if isinstance(value, Decimal):
            value = float(value)
        elif isinstance(value, UsageSource):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def event_from_dict(data: dict[str, object], *, started_ns: int | None = None) -> UsageEvent:
    """Rebuild an event from :func:`event_to_dict` output (money becomes Decimal again).

    Floats lose nothing that JSON kept; use the store, not JSON, for exact money.

    Args:
        data: A dict with at least the :data:`EVENT_FIELDS`.
        started_ns: Start in UNIX ns; derived from ``started_at`` when omitted.

    Returns:
        The event.

    Raises:
        KeyError: A public field is missing.
        ValueError: A field has an unusable value.
    """
    kwargs: dict[str, object] = {name: data[name] for name in EVENT_FIELDS}
    kwargs.update({name: data[name] for name in EXTRA_FIELDS if name in data})
    for name in _MONEY_FIELDS:
        value = kwargs.get(name)
        if value is not None:
            kwargs[name] = Decimal(str(value))
    kwargs["usage_source"] = UsageSource(str(kwargs["usage_source"]))
    flags = kwargs.get("usage_flags")
    if isinstance(flags, list | tuple):
        kwargs["usage_flags"] = tuple(str(f) for f in flags)
    if started_ns is None:
        started_ns = _ns_from_iso(str(kwargs["started_at"]))
    kwargs["started_ns"] = started_ns
    return UsageEvent(**kwargs)  # type: ignore[arg-type]


def csv_header() -> list[str]:
    """Return the CSV header row (:data:`ALL_FIELDS`)."""
    return list(ALL_FIELDS)


def event_to_csv_row(event: UsageEvent) -> list[str]:
    """Return the event as CSV cells matching :func:`csv_header`.

    None is an empty cell, booleans are ``true``/``false`` and money is the
    exact Decimal text, so a spreadsheet sum is the store's sum.
    """
    row: list[str] = []
    for name in ALL_FIELDS:
        value = getattr(event, name)
        if value is None:
            row.append("")
        elif isinstance(value, bool):
            row.append("true" if value else "false")
        elif isinstance(value, UsageSource):
            row.append(value.value)
        elif isinstance(value, Decimal):
            row.append(format(value, "f"))
        elif isinstance(value, tuple):
            row.append(",".join(value))
        else:
            row.append(str(value))
    return row


def iso_from_ns(ns: int) -> str:
    """Format UNIX nanoseconds as ISO 8601 UTC with microseconds and a Z.

    >>> iso_from_ns(1_700_000_000_123_456_789)
    '2023-11-14T22:13:20.123456Z'
    """
    seconds, rest = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ns_from_iso(text: str) -> int:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
