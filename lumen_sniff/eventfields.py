"""The event's fields, read from the :class:`~lumen_sniff.model.UsageEvent` dataclass.

The one list every sink uses: JSON and CSV (:mod:`lumen_sniff.serialize`) and the
store's ``events`` columns (:mod:`lumen_sniff.store.rows`) are derived here from
each field's metadata, so a new event field is declared once, on the dataclass.
"""

from __future__ import annotations

import dataclasses

from lumen_sniff.model import UsageEvent

__all__ = ["EXTRA_FIELDS", "FIELD_TYPES", "PUBLIC_FIELDS", "SHOWN_FIELDS", "STORED_FIELDS"]

_FIELDS = dataclasses.fields(UsageEvent)

PUBLIC_FIELDS: tuple[str, ...] = tuple(
    f.name for f in _FIELDS if f.metadata.get("shown") == "public"
)
"""The public event fields, in order (the API, replay output and checks use them)."""

EXTRA_FIELDS: tuple[str, ...] = tuple(f.name for f in _FIELDS if f.metadata.get("shown") == "extra")
"""Further serialised fields, after the public ones."""

SHOWN_FIELDS: tuple[str, ...] = PUBLIC_FIELDS + EXTRA_FIELDS
"""Every serialised field, in output order (also the CSV header)."""

STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in _FIELDS if f.metadata.get("stored", True))
"""Fields kept in the store, one column each, in dataclass order."""

FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in _FIELDS}
"""Each field's annotation as written (``"Decimal | None"``), for the codecs of sinks."""
