"""The dashboard's API: filtered aggregates, cache savings, lap end, and the page's routes.

Real SQLite file, real uvicorn on 127.0.0.1 (the ``Served`` harness of test_api).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from lumen_sniff.model import UsageEvent
from lumen_sniff.pricing.prices import Pricer
from lumen_sniff.pricing.quote import quote
from tests.support.apiserver import TOKEN, Served
from tests.support.events import HOUR_NS, MIN_NS, T0, make_event, random_events

DATA = random_events(1500, seed=42, start_ns=T0, span_ns=40 * HOUR_NS)

LO, HI = T0 + 90 * MIN_NS, T0 + 31 * HOUR_NS + 7 * MIN_NS


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + "Z"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path / "events.db")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("agg") / "events.db")
    s.add(DATA)
    yield s
    s.stop()


def _part(**match: object) -> list[UsageEvent]:
    return [
        e
        for e in DATA
        if LO <= e.started_ns < HI and all(getattr(e, k) == v for k, v in match.items())
    ]


def _cost(events: list[UsageEvent]) -> float | None:
    priced = [e.cost_usd for e in events if e.cost_usd is not None]
    return float(sum(priced, Decimal(0))) if priced else None


@pytest.mark.parametrize(
    "match", [{}, {"model": "gpt-4o-mini"}, {"tenant": "acme", "provider": "google"}]
)
def test_summary_takes_every_filter(data: Served, match: dict[str, str]) -> None:
    body = data.get("/api/summary", since=_iso(LO), until=_iso(HI), **match)
    part = _part(**match)
    assert body["requests"] == len(part) > 0
    assert body["input_tokens"] == sum(e.input_tokens for e in part)
    assert body["cost_usd"] == pytest.approx(_cost(part) or 0.0, abs=1e-12)


def test_breakdown_rows_per_value_costliest_first(data: Served) -> None:
    body = data.get("/api/breakdown", dim="model", since=_iso(LO), until=_iso(HI), tenant="acme")
    assert body["dim"] == "model"
    expected: dict[str | None, list[UsageEvent]] = {}
    for e in _part(tenant="acme"):
        expected.setdefault(e.model, []).append(e)
    got = {r["value"]: r for r in body["rows"]}
    assert set(got) == set(expected)
    for value, evs in expected.items():
        assert got[value]["requests"] == len(evs)
        assert got[value]["output_tokens"] == sum(e.output_tokens for e in evs)
        assert got[value]["cost_usd"] == pytest.approx(_cost(evs), abs=1e-12)
    costs = [r["cost_usd"] or 0 for r in body["rows"]]
    assert costs == sorted(costs, reverse=True)


def test_usage_takes_filters(data: Served) -> None:
    body = data.get(
        "/api/usage",
        group_by="provider",
        bucket="hour",
        since=_iso(LO),
        until=_iso(HI),
        model="gpt-4o-mini",
    )
    got = sum(p["requests"] for s in body["series"] for p in s["points"])
    assert got == len(_part(model="gpt-4o-mini"))


def test_unknown_dimension_and_parameter_are_400(data: Served) -> None:
    assert data.http.get("/api/breakdown", params={"dim": "prompt"}).status_code == 400
    response = data.http.get("/api/summary", params={"modle": "x"})
    assert response.status_code == 400 and "modle" in response.json()["detail"]


def test_cache_savings_use_the_pricers_cache_prices(tmp_path: Path) -> None:
    s = Served(tmp_path / "events.db")
    try:
        now = time.time_ns()
        s.add(
            [
                make_event(
                    now - 10 * MIN_NS, model="gpt-4o", input_tokens=10_000, cache_read_tokens=6_000
                ),
                make_event(
                    now - 9 * MIN_NS, model="gpt-4o", input_tokens=2_000, cache_read_tokens=0
                ),
                make_event(
                    now - 8 * MIN_NS,
                    model="mystery-9",
                    cost_usd=None,
                    input_tokens=500,
                    cache_read_tokens=100,
                ),
            ]
        )
        body = s.get("/api/cache", since="1h")
        rates = quote(Pricer(), "", "gpt-4o", now).per_million_usd
        assert rates is not None and rates["cache_read"] < rates["input"]
        saved = 6_000 * (rates["input"] - rates["cache_read"]) / 1_000_000
        by_model = {m["model"]: m for m in body["models"]}
        assert by_model["gpt-4o"]["cache_read_share"] == 0.5
        assert by_model["gpt-4o"]["saved_usd"] == pytest.approx(float(saved), abs=1e-12)
        assert (
            by_model["mystery-9"]["priced"] is False and by_model["mystery-9"]["saved_usd"] is None
        )
        assert body["unpriced_models"] == 1
        assert body["cache_read_share"] == pytest.approx(6_100 / 12_500)
        assert body["saved_usd"] == pytest.approx(float(saved), abs=1e-12)
    finally:
        s.stop()


def test_a_lap_ends_on_request(served: Served) -> None:
    assert served.http.post("/api/laps/end").json() == {"ended": False}
    assert served.http.post("/api/laps", json={"name": "one"}).status_code == 201
    assert served.http.post("/api/laps/end").json() == {"ended": True}
    (lap,) = served.get("/api/laps")["laps"]
    assert lap["name"] == "one" and lap["ended_at"] is not None


def test_the_page_says_what_to_run_when_not_built(tmp_path: Path) -> None:
    s = Served(tmp_path / "events.db", web_dir=tmp_path / "nothing")
    try:
        response = s.http.get("/")
        assert response.status_code == 503
        assert "make setup" in response.text
    finally:
        s.stop()


def test_with_a_token_the_page_is_open_and_the_data_is_not(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>t</title>")
    (web / "app.css").write_text("body {}")
    s = Served(tmp_path / "events.db", token=TOKEN, web_dir=web)
    try:
        bare = httpx.Client(base_url=s.url)
        page = bare.get("/")
        assert (
            page.status_code == 200
            and "default-src 'self'" in page.headers["content-security-policy"]
        )
        assert bare.get("/ui/app.css").status_code == 200
        for path in ("/api/summary", "/api/breakdown", "/api/cache", "/api/live"):
            assert bare.get(path).status_code == 401, path
        assert bare.post("/api/laps/end").status_code == 401
        bare.close()
        assert s.http.get("/api/breakdown").status_code == 200
    finally:
        s.stop()


def test_openapi_documents_the_aggregate_routes(data: Served) -> None:
    paths = data.get("/openapi.json")["paths"]
    for path in ("/api/summary", "/api/usage", "/api/breakdown", "/api/cache", "/api/laps/end"):
        assert path in paths, path
    params = {p["name"] for p in paths["/api/breakdown"]["get"]["parameters"]}
    assert params >= {
        "dim",
        "since",
        "until",
        "model",
        "provider",
        "process",
        "api_key_id",
        "tenant",
        "container",
        "status",
    }
