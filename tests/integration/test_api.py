"""The HTTP API against a real SQLite file and a real uvicorn server on 127.0.0.1.

The server runs in its own thread and event loop (as in the daemon, the store
and the app share one loop); tests talk to it with httpx over loopback.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lumen_sniff import __version__
from lumen_sniff.api import check_listen
from lumen_sniff.errors import ConfigError
from lumen_sniff.model import UsageSource
from lumen_sniff.serialize import ALL_FIELDS, event_to_dict
from tests.support.apiserver import TOKEN, Served
from tests.support.events import HOUR_NS, MIN_NS, T0, make_event, random_events


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path / "events.db")
    yield s
    s.stop()


DATA = random_events(1500, seed=42, start_ns=T0, span_ns=40 * HOUR_NS)
SMALL = [
    make_event(T0 + 10 * MIN_NS, cost_usd=Decimal("0.1"), input_tokens=1000, output_tokens=10),
    make_event(T0 + 70 * MIN_NS, cost_usd=Decimal("0.1"), input_tokens=2000, output_tokens=20),
    make_event(T0 + 80 * MIN_NS, cost_usd=Decimal("0.1"), cache_read_tokens=64),
    make_event(
        T0 + 20 * MIN_NS,
        model="mystery-1",
        provider="ollama",
        cost_usd=None,
        usage_source=UsageSource.ESTIMATED,
        input_tokens=7,
        output_tokens=3,
    ),
]
"""Three calls at $0.1 (a float sum would be 0.30000000000000004) and one unpriced."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("api") / "events.db")
    s.add(DATA)
    yield s
    s.stop()


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + "Z"


# ----------------------------------------------------------------- endpoints


def test_status_shape(data: Served) -> None:
    body = data.get("/api/status")
    assert body["ready"] is True
    assert body["version"] == __version__
    assert body["capture"] == {"ready": True, "dropped": {}}
    store = body["store"]
    assert store["path"] == str(data.store.path)
    assert store["events"] == len(DATA)
    assert (store["queue"], store["drops"], store["duplicates"]) == (0, {}, 0)


def test_events_newest_first_with_filters(data: Served) -> None:
    body = data.get("/api/events", limit=5)
    newest = sorted(DATA, key=lambda e: e.started_ns, reverse=True)[:5]
    assert body == {"events": [event_to_dict(e) for e in newest]}
    assert list(body["events"][0]) == list(ALL_FIELDS)

    lo, hi = T0 + 3 * HOUR_NS, T0 + 9 * HOUR_NS
    body = data.get(
        "/api/events",
        limit=10_000,
        since=_iso(lo),
        until=_iso(hi),
        provider="anthropic",
        status="error",
    )
    expected = [
        e.id
        for e in sorted(DATA, key=lambda e: e.started_ns, reverse=True)
        if lo <= e.started_ns < hi and e.provider == "anthropic" and e.status in (0, 429)
    ]
    assert [e["id"] for e in body["events"]] == expected
    assert len(expected) > 5


def test_summary_matches_raw_events(data: Served) -> None:
    lo, hi = T0 + 90 * MIN_NS, T0 + 31 * HOUR_NS + 7 * MIN_NS
    body = data.get("/api/summary", since=_iso(lo), until=_iso(hi))
    part = [e for e in DATA if lo <= e.started_ns < hi]
    priced = [e.cost_usd for e in part if e.cost_usd is not None]
    assert body == {
        "requests": len(part),
        "errors": sum(e.status in (0, 429) for e in part),
        "cost_usd": float(sum(priced, Decimal(0))),
        "input_tokens": sum(e.input_tokens for e in part),
        "output_tokens": sum(e.output_tokens for e in part),
        "cache_read_tokens": sum(e.cache_read_tokens for e in part),
        "cache_write_tokens": sum(e.cache_write_tokens for e in part),
        "reasoning_tokens": sum(e.reasoning_tokens for e in part),
        "unpriced_requests": len(part) - len(priced),
        "estimated_requests": sum(e.usage_source is UsageSource.ESTIMATED for e in part),
    }


@pytest.mark.parametrize("group_by", ["process", "service"])
def test_usage_day_series_match_raw_events(data: Served, group_by: str) -> None:
    body = data.get("/api/usage", group_by=group_by, bucket="day", since=_iso(T0))
    assert (body["group_by"], body["bucket"]) == (group_by, "day")
    got = {(s["group"], p["t"]): p["requests"] for s in body["series"] for p in s["points"]}
    expected: dict[tuple[str | None, str], int] = {}
    for e in DATA:
        day = e.started_at[:10] + "T00:00:00.000000Z"
        key = (getattr(e, group_by), day)
        expected[key] = expected.get(key, 0) + 1
    assert got == expected
    assert len({g for g, _ in got}) > 1


def test_events_filter_by_service(data: Served) -> None:
    body = data.get("/api/events", limit=10_000, service="billing")
    expected = sorted(
        (e for e in DATA if e.service == "billing"), key=lambda e: e.started_ns, reverse=True
    )
    assert [e["id"] for e in body["events"]] == [e.id for e in expected]
    assert expected and all(e["service"] == "billing" for e in body["events"])


def test_exact_summary_and_usage_shape(served: Served) -> None:
    served.add(SMALL)
    assert served.get("/api/summary") == {
        "requests": 4,
        "errors": 0,
        "cost_usd": 0.3,
        "input_tokens": 3107,
        "output_tokens": 53,
        "cache_read_tokens": 64,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "unpriced_requests": 1,
        "estimated_requests": 1,
    }
    body = served.get(
        "/api/usage", group_by="model", bucket="hour", since="2025-03-01", until="2025-03-01T03:00Z"
    )
    point = {
        "errors": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "estimated_requests": 0,
        "unpriced_requests": 0,
    }
    assert body == {
        "group_by": "model",
        "bucket": "hour",
        "series": [
            {
                "group": "gpt-4o-mini",
                "points": [
                    {
                        **point,
                        "t": "2025-03-01T01:00:00.000000Z",
                        "requests": 2,
                        "cost_usd": 0.2,
                        "input_tokens": 2100,
                        "output_tokens": 40,
                        "cache_read_tokens": 64,
                    },
                    {
                        **point,
                        "t": "2025-03-01T00:00:00.000000Z",
                        "requests": 1,
                        "cost_usd": 0.1,
                        "input_tokens": 1000,
                        "output_tokens": 10,
                        "cache_read_tokens": 0,
                    },
                ][::-1],
            },
            {
                "group": "mystery-1",
                "points": [
                    {
                        **point,
                        "t": "2025-03-01T00:00:00.000000Z",
                        "requests": 1,
                        "cost_usd": None,
                        "input_tokens": 7,
                        "output_tokens": 3,
                        "cache_read_tokens": 0,
                        "unpriced_requests": 1,
                        "estimated_requests": 1,
                    }
                ],
            },
        ],
    }


def test_csv_export(served: Served) -> None:
    served.add(SMALL)
    response = served.http.get("/api/export.csv", params={"until": "2025-03-01T01:15:00Z"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["started_at"] for r in rows] == [
        "2025-03-01T00:10:00.000000Z",
        "2025-03-01T00:20:00.000000Z",
        "2025-03-01T01:10:00.000000Z",
    ]
    assert [r["cost_usd"] for r in rows] == ["0.1", "", "0.1"]
    assert list(rows[0]) == list(ALL_FIELDS)


def test_laps(served: Served) -> None:
    first = served.http.post("/api/laps", json={"name": "before"})
    assert first.status_code == 201
    assert first.json()["name"] == "before"
    assert first.json()["ended_at"] is None
    now = time.time_ns()
    served.add([make_event(now, cost_usd=Decimal("0.25"))])
    time.sleep(0.01)
    assert served.http.post("/api/laps", json={"name": "after"}).status_code == 201
    served.add([make_event(time.time_ns(), cost_usd=None), make_event(time.time_ns())])
    laps = served.get("/api/laps")["laps"]
    assert [lp["name"] for lp in laps] == ["before", "after"]
    assert laps[0]["ended_at"] == laps[1]["started_at"]
    assert laps[1]["ended_at"] is None
    assert (laps[0]["requests"], laps[0]["cost_usd"], laps[0]["unpriced_requests"]) == (1, 0.25, 0)
    assert (laps[1]["requests"], laps[1]["cost_usd"], laps[1]["unpriced_requests"]) == (
        2,
        0.000027,
        1,
    )


def test_pricing(served: Served) -> None:
    body = served.get("/api/pricing", model="claude-sonnet-4-20250514", provider="anthropic")
    assert body["priced"] is True
    assert body["source"].startswith("genai-prices ")
    assert body["per_million_usd"] == {
        "input": 3.0,
        "output": 15.0,
        "cache_read": 0.3,
        "cache_write": 3.75,
    }
    body = served.get("/api/pricing", model="no-such-model-xyz")
    assert (body["priced"], body["source"], body["per_million_usd"]) == (False, None, None)


def test_restart_keeps_all_data(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    first = Served(db)
    try:
        first.add(DATA[:400])
        summary = first.get("/api/summary")
        events = first.get("/api/events", limit=10_000)
    finally:
        first.stop()
    second = Served(db)
    try:
        assert second.get("/api/summary") == summary
        assert second.get("/api/events", limit=10_000) == events
        assert len(events["events"]) == 400
    finally:
        second.stop()


# --------------------------------------------------------------- live, metrics


def test_live_streams_committed_events_and_ends_on_close(tmp_path: Path) -> None:
    s = Served(tmp_path / "events.db")
    received: list[dict[str, Any]] = []
    try:
        with s.http.stream("GET", "/api/live") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines) == ": subscribed"
            sent = SMALL[:2]
            s.add(sent)
            event_name = None
            for line in lines:
                if line.startswith("event: "):
                    event_name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    assert event_name == "usage"
                    received.append(json.loads(line.removeprefix("data: ")))
                    if len(received) == len(sent):
                        break
            assert received == [event_to_dict(e) for e in sent]
            s.call(s.store.close())  # daemon shutdown: the stream must end by itself
            assert [ln for ln in lines if ln] == []
    finally:
        s.stop()


def test_metrics(tmp_path: Path) -> None:
    s = Served(tmp_path / "events.db", metrics_max_label_values=2)
    s.status_value = {
        "ready": True,
        "dropped": {"ringbuf_full": 7},
        "export": {"redis": {"sent": 3, "failures": 2, "queue": 1, "dropped": {"queue_full": 4}}},
    }
    try:
        s.add(
            [
                make_event(
                    T0,
                    model="m-a",
                    cost_usd=Decimal("0.5"),
                    duration_ms=1500.0,
                    tenant="acme",
                    service="bill",
                ),
                make_event(
                    T0, model="m-b", status=429, cost_usd=None, ttft_ms=None, service="bill"
                ),
                make_event(T0, model="m-c", reasoning_tokens=5, output_tokens=25, service="bill"),
                make_event(T0, model="m-d", cost_usd=Decimal("0.25"), service="bill"),
            ]
        )
        # A new series is scraped at 0 first, so increase() counts its first calls.
        first = s.http.get("/metrics")
        assert first.status_code == 200
        held = [
            smp.value
            for f in text_string_to_metric_families(first.text)
            if f.name
            in (
                "lumen_requests",
                "lumen_tokens",
                "lumen_cost_usd",
                "lumen_request_duration_seconds",
            )
            for smp in f.samples
            if smp.name.endswith(("_total", "_count"))
        ]
        assert held and set(held) == {0.0}
        response = s.http.get("/metrics")
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}

        def samples(name: str, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
            return {
                tuple(sorted(smp.labels.items())): smp.value
                for smp in families[name].samples
                if smp.name == name + suffix
            }

        bill = (("process", "python3"), ("provider", "openai"), ("service", "bill"))
        base = (*bill, ("tenant", "unknown"))
        acme = (*bill, ("tenant", "acme"))
        assert samples("lumen_requests", "_total") == {
            tuple(sorted((("model", "m-a"), *acme, ("status", "200")))): 1,
            tuple(sorted((("model", "m-b"), *base, ("status", "429")))): 1,
            tuple(sorted((("model", "other"), *base, ("status", "200")))): 2,
        }
        tokens = samples("lumen_tokens", "_total")
        assert tokens[(("model", "other"), *base, ("type", "output"))] == 45
        assert tokens[(("model", "other"), *base, ("type", "reasoning"))] == 5
        assert tokens[(("model", "m-a"), *acme, ("type", "input"))] == 100
        assert samples("lumen_cost_usd", "_total") == {
            (("model", "m-a"), *acme): 0.5,
            (("model", "other"), *base): 0.25 + 0.000027,
        }
        assert samples("lumen_unpriced_requests", "_total") == {
            (
                ("model", "m-b"),
                ("provider", "openai"),
                ("service", "bill"),
                ("tenant", "unknown"),
            ): (1)
        }
        assert samples("lumen_request_duration_seconds", "_count") == {
            (("model", "m-a"), ("provider", "openai")): 1,
            (("model", "m-b"), ("provider", "openai")): 1,
            (("model", "other"), ("provider", "openai")): 2,
        }
        assert samples("lumen_request_duration_seconds", "_sum")[
            (("model", "m-a"), ("provider", "openai"))
        ] == pytest.approx(1.5)
        assert samples("lumen_ttft_seconds", "_count") == {
            (("model", "m-a"), ("provider", "openai")): 1,
            (("model", "other"), ("provider", "openai")): 2,
        }
        assert samples("lumen_capture_dropped", "_total") == {(("reason", "ringbuf_full"),): 7}
        assert samples("lumen_store_events") == {(): 4}
        assert samples("lumen_ready") == {(): 1}
        assert samples("lumen_export_dropped", "_total") == {
            (("reason", r), ("sink", "redis")): 4 if r == "queue_full" else 0
            for r in ("queue_full", "export_failed", "rejected", "shutdown")
        }
        assert samples("lumen_export_sent", "_total") == {(("sink", "redis"),): 3}
        assert samples("lumen_export_failures", "_total") == {(("sink", "redis"),): 2}
        assert samples("lumen_export_queue_records") == {(("sink", "redis"),): 1}
    finally:
        s.stop()


# ------------------------------------------------------------------- errors


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/events", {"limit": "0"}),
    ("GET", "/api/events", {"limit": "10001"}),
    ("GET", "/api/events", {"limit": "lots"}),
    ("GET", "/api/events", {"since": "yesterday"}),
    ("GET", "/api/events", {"until": "2025-13-01"}),
    ("GET", "/api/events", {"since": "2025-03-02", "until": "2025-03-01"}),
    ("GET", "/api/events", {"status": "teapot"}),
    ("GET", "/api/events", {"status": "1000"}),
    ("GET", "/api/events", {"modle": "gpt-4o"}),
    ("GET", "/api/summary", {"since": "7x"}),
    ("GET", "/api/summary", {"since": "now", "until": "1d"}),
    ("GET", "/api/summary", {"until": "1969-12-31"}),
    ("GET", "/api/summary", {"group_by": "model"}),
    ("GET", "/api/usage", {"group_by": "pid"}),
    ("GET", "/api/usage", {"bucket": "week"}),
    ("GET", "/api/usage", {"bucket": "minute", "since": "2000-01-01"}),
    ("GET", "/api/usage", {"since": "soon"}),
    ("GET", "/api/live", {"follow": "1"}),
    ("GET", "/api/laps", {"all": "1"}),
    ("GET", "/api/export.csv", {"since": "last week"}),
    ("GET", "/api/export.csv", {"format": "xlsx"}),
    ("GET", "/api/pricing", {}),
    ("GET", "/api/pricing", {"model": ""}),
    ("GET", "/api/pricing", {"model": "gpt-4o", "at": "tomorrow-ish"}),
    ("GET", "/api/status", {"verbose": "1"}),
    ("GET", "/metrics", {"name[]": "x"}),
]


@pytest.mark.parametrize(("method", "path", "params"), BAD_REQUESTS)
def test_bad_parameters_are_400_with_a_message(
    data: Served, method: str, path: str, params: dict[str, Any]
) -> None:
    response = data.http.request(method, path, params=params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert len(detail) > 10


@pytest.mark.parametrize(
    "body",
    [None, b"not json", {"name": ""}, {"name": "x" * 201}, {"label": "x"}, {"name": 5}],
)
def test_bad_lap_bodies_are_400(served: Served, body: Any) -> None:
    if isinstance(body, bytes) or body is None:
        response = served.http.post(
            "/api/laps", content=body, headers={"content-type": "application/json"}
        )
    else:
        response = served.http.post("/api/laps", json=body)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert served.get("/api/laps") == {"laps": []}


def test_relative_and_iso_times_are_accepted(served: Served) -> None:
    now = time.time_ns()
    served.add([make_event(now - 2 * HOUR_NS), make_event(now - 10 * MIN_NS)])
    assert served.get("/api/summary", since="30m")["requests"] == 1
    assert served.get("/api/summary", since="3h")["requests"] == 2
    assert served.get("/api/summary", since="1d", until="1h")["requests"] == 1
    assert served.get("/api/summary", since="1w", until="now")["requests"] == 2
    assert served.get("/api/summary", since="2025-01-01T00:00:00+02:00")["requests"] == 2


# --------------------------------------------------------------------- auth


def test_token_is_required_everywhere_but_docs(tmp_path: Path) -> None:
    s = Served(tmp_path / "events.db", token=TOKEN)
    try:
        anon = httpx.Client(base_url=s.url, timeout=10)
        wrong = httpx.Client(base_url=s.url, headers={"Authorization": "Bearer nope"}, timeout=10)
        for path in (
            "/api/status",
            "/api/events",
            "/api/summary",
            "/api/usage",
            "/api/laps",
            "/api/export.csv",
            "/api/pricing?model=x",
            "/api/live",
            "/metrics",
        ):
            for client in (anon, wrong):
                response = client.get(path)
                assert response.status_code == 401, path
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert anon.post("/api/laps", json={"name": "x"}).status_code == 401
        assert anon.get("/docs").status_code == 200
        assert anon.get("/openapi.json").status_code == 200
        assert s.get("/api/status")["ready"] is True
        assert s.get("/api/laps") == {"laps": []}
        anon.close()
        wrong.close()
    finally:
        s.stop()


def test_no_token_serves_everyone(served: Served) -> None:
    assert httpx.get(served.url + "/api/summary", timeout=10).status_code == 200


def test_check_listen() -> None:
    check_listen("127.0.0.1", None)
    check_listen("::1", None)
    check_listen("localhost", None)
    check_listen("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="without an API token"):
        check_listen("0.0.0.0", None)
    with pytest.raises(ConfigError):
        check_listen("192.0.2.10", "")


def test_status_survives_a_failing_status_callable(tmp_path: Path) -> None:
    def broken() -> Mapping[str, Any]:
        raise RuntimeError("capture thread gone")

    s = Served(tmp_path / "events.db", status=broken)
    try:
        body = s.get("/api/status")
        assert body["ready"] is False
        assert "capture thread gone" in body["capture"]["error"]
        assert s.http.get("/metrics").status_code == 200
    finally:
        s.stop()
