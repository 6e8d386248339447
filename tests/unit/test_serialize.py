"""serialize.py: the shared JSON and CSV shapes of a UsageEvent."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.serialize import (
    ALL_FIELDS,
    EVENT_FIELDS,
    csv_header,
    event_from_dict,
    event_to_csv_row,
    event_to_dict,
    iso_from_ns,
)

PUBLIC = [
    "id",
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
    "usage_source",
    "pid",
    "process",
    "duration_ms",
    "ttft_ms",
    "api_key_id",
    "tenant",
]
EXTRAS = [
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
    "service",
]

START_NS = 1_740_823_200_123_456_000  # 2025-03-01T10:00:00.123456Z


def _event(**over: object) -> UsageEvent:
    fields: dict[str, object] = {
        "id": "a1b2c3d4e5f60718",
        "started_at": "2025-03-01T10:00:00.123456Z",
        "started_ns": START_NS,
        "provider": "openai",
        "api": "chat",
        "model": "gpt-4o-mini",
        "stream": True,
        "status": 200,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": Decimal("0.0002151"),
        "usage_source": UsageSource.REPORTED,
        "pid": 4242,
        "process": "python3",
        "duration_ms": 812.5,
        "ttft_ms": 230.0,
        "api_key_id": "k:1f2e3d4c…wxyz",
        "tenant": "acme",
        "host": "api.openai.com",
        "path": "/v1/chat/completions",
        "price_source": "genai-prices 0.2.3",
        "exe": "/usr/bin/python3.11",
    }
    fields.update(over)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def test_field_order_is_public_then_extras() -> None:
    assert list(EVENT_FIELDS) == PUBLIC
    assert list(ALL_FIELDS) == PUBLIC + EXTRAS
    assert list(event_to_dict(_event())) == PUBLIC + EXTRAS
    assert csv_header() == PUBLIC + EXTRAS


def test_event_to_dict_values() -> None:
    d = event_to_dict(_event())
    assert d == {
        "id": "a1b2c3d4e5f60718",
        "started_at": "2025-03-01T10:00:00.123456Z",
        "provider": "openai",
        "api": "chat",
        "model": "gpt-4o-mini",
        "stream": True,
        "status": 200,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0002151,
        "usage_source": "reported",
        "pid": 4242,
        "process": "python3",
        "duration_ms": 812.5,
        "ttft_ms": 230.0,
        "api_key_id": "k:1f2e3d4c…wxyz",
        "tenant": "acme",
        "host": "api.openai.com",
        "path": "/v1/chat/completions",
        "complete": True,
        "error_type": None,
        "price_source": "genai-prices 0.2.3",
        "provider_cost_usd": None,
        "exe": "/usr/bin/python3.11",
        "container": None,
        "unit": None,
        "usage_flags": [],
        "service": None,
    }
    assert json.loads(json.dumps(d)) == d


def test_unpriced_is_null_not_zero() -> None:
    d = event_to_dict(_event(cost_usd=None, price_source=None))
    assert d["cost_usd"] is None
    assert json.dumps(d).count('"cost_usd": null') == 1
    row = dict(zip(csv_header(), event_to_csv_row(_event(cost_usd=None)), strict=True))
    assert row["cost_usd"] == ""


def test_no_started_ns_or_extra_leak_into_public_shape() -> None:
    d = event_to_dict(_event(extra={"note": "x"}))
    assert "started_ns" not in d
    assert "extra" not in d


def test_csv_row_keeps_exact_money_and_literal_bools() -> None:
    e = _event(cost_usd=Decimal("0.000000123456789"), provider_cost_usd=Decimal("1E-7"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csv_header())
    writer.writerow(event_to_csv_row(e))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["cost_usd"] == "0.000000123456789"
    assert rows[0]["provider_cost_usd"] == "0.0000001"
    assert rows[0]["stream"] == "true"
    assert rows[0]["complete"] == "true"
    assert rows[0]["container"] == ""
    assert rows[0]["usage_source"] == "reported"


def test_iso_from_ns() -> None:
    assert iso_from_ns(START_NS) == "2025-03-01T10:00:00.123456Z"
    assert iso_from_ns(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_from_ns(1_999) == "1970-01-01T00:00:00.000001Z"


def test_round_trip_through_json() -> None:
    e = _event()
    back = event_from_dict(json.loads(json.dumps(event_to_dict(e))))
    assert back == e


@given(
    cost=st.one_of(st.none(), st.decimals(min_value=0, max_value=1000, places=9)),
    ns=st.integers(min_value=0, max_value=4_102_444_800 * 10**9),
    tokens=st.integers(min_value=0, max_value=10**9),
    source=st.sampled_from(list(UsageSource)),
)
def test_round_trip_property(
    cost: Decimal | None, ns: int, tokens: int, source: UsageSource
) -> None:
    ns -= ns % 1000  # ISO keeps microseconds
    e = _event(
        cost_usd=cost,
        started_ns=ns,
        started_at=iso_from_ns(ns),
        input_tokens=tokens,
        usage_source=source,
    )
    d = json.loads(json.dumps(event_to_dict(e)))
    back = event_from_dict(d)
    assert back.started_ns == ns
    assert back.input_tokens == tokens
    assert back.usage_source is source
    if cost is None:
        assert back.cost_usd is None
    else:
        assert back.cost_usd == Decimal(str(float(cost)))
