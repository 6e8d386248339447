"""Every sink's field list comes from the UsageEvent dataclass, and the store agrees."""

from __future__ import annotations

import dataclasses
import sqlite3
from decimal import Decimal

from lumen_sniff.eventfields import EXTRA_FIELDS, PUBLIC_FIELDS, STORED_FIELDS
from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import ALL_FIELDS, csv_header
from lumen_sniff.store.rows import EVENT_COLUMNS, event_from_row, event_to_row
from lumen_sniff.store.schema import MIGRATIONS


def _event() -> UsageEvent:
    return UsageEvent(
        id="abc", started_at="2026-11-23T13:46:05.123456Z", started_ns=1_795_441_565_123_456_000,
        provider="openai", api="chat", model="gpt-4o", stream=True, status=200,
        input_tokens=10, output_tokens=5, cache_read_tokens=2, cache_write_tokens=0,
        reasoning_tokens=1, cost_usd=Decimal("0.000123"), usage_source=UsageSource.REPORTED,
        pid=7, process="python3", duration_ms=12.5, ttft_ms=3.0, api_key_id="k:1",
        tenant=None, host="api.openai.com", path="/v1/chat/completions", complete=False,
        provider_cost_usd=Decimal("0.0001"), extra={"end": "closed"},
    )  # fmt: skip


def test_every_field_is_declared_once_on_the_dataclass() -> None:
    names = [f.name for f in dataclasses.fields(UsageEvent)]
    assert set(PUBLIC_FIELDS) | set(EXTRA_FIELDS) | {"started_ns", "extra"} == set(names)
    assert ALL_FIELDS == PUBLIC_FIELDS + EXTRA_FIELDS and csv_header() == list(ALL_FIELDS)
    assert tuple(names) == STORED_FIELDS


def test_store_columns_are_the_schema_and_rows_round_trip_by_name() -> None:
    db = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        db.executescript(migration)
    table = [row[1] for row in db.execute("PRAGMA table_info(events)")]
    assert set(EVENT_COLUMNS) == set(table) - {"seq"}
    db.execute(
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
        event_to_row(_event()),
    )
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM events").fetchone()
    assert event_from_row(row) == _event()
