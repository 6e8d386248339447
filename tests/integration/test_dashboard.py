"""The web dashboard in a real browser (Debian's chromium via Playwright) against a real API.

The API serves fixture data (:mod:`tests.support.dashdata`) from a real SQLite
file through uvicorn on 127.0.0.1; the page is the built one (``make setup``).
Screenshots of the main views are saved to the artifacts directory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser, expect

from lumen_sniff.serialize import iso_from_ns
from tests.support.apiserver import TOKEN, Served
from tests.support.browser import Watched, artifacts_dir, chromium, open_page
from tests.support.dashdata import fixture_events
from tests.support.events import make_event

pytestmark = pytest.mark.slow

NOW_NS = time.time_ns()
SINCE = iso_from_ns(NOW_NS - 80 * 3600 * 10**9)
UNTIL = iso_from_ns(NOW_NS + 3600 * 10**9)
CUSTOM = f"#range=custom&since={quote(SINCE)}&until={quote(UNTIL)}&dim=model&table=model"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("dash") / "events.db")
    served.add(fixture_events(NOW_NS))
    yield served
    served.stop()


def _clean(w: Watched) -> None:
    assert w.errors == [], w.errors
    assert w.failed == [], w.failed


def _rows(w: Watched, table: str) -> list[str]:
    return list(
        w.page.eval_on_selector_all(
            f"#{table} tbody tr", "rs => rs.map(r => r.dataset.value ?? r.cells[0].textContent)"
        )
    )


def test_page_loads_clean_and_saves_screenshots(browser: Browser, api: Served) -> None:
    shots = artifacts_dir()
    for name, options in {
        "dashboard-light": {"viewport": {"width": 1400, "height": 900}, "color_scheme": "light"},
        "dashboard-dark": {"viewport": {"width": 1400, "height": 900}, "color_scheme": "dark"},
        "dashboard-phone": {
            "viewport": {"width": 390, "height": 844},
            "color_scheme": "light",
            "is_mobile": True,
        },
    }.items():
        with open_page(browser, api.url + "/", **options) as w:
            w.wait_loaded()
            w.page.wait_for_selector("#feed tbody tr")
            w.page.screenshot(path=shots / f"{name}.png", full_page=True)
            _clean(w)
            # Aggregates only: no bulk event download, no export.
            bulk = [
                u
                for u in w.requests
                if "/api/export" in u or re.search(r"/api/events\?.*limit=(\d{3,})", u)
            ]
            assert bulk == []
            assert all(u.startswith(api.url) or u.startswith("data:") for u in w.requests)
    assert (shots / "dashboard-light.png").stat().st_size > 10_000


def test_header_totals_equal_summary_for_the_same_range(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/" + CUSTOM) as w:
        w.wait_loaded()
        since = w.page.get_attribute("body", "data-since")
        until = w.page.get_attribute("body", "data-until")
        summary = api.get("/api/summary", since=since, until=until)
        assert summary["requests"] == len(fixture_events(NOW_NS))
        assert w.gauge("requests") == summary["requests"]
        assert w.gauge("cost") == pytest.approx(summary["cost_usd"], abs=1e-12)
        assert w.gauge("errors") == summary["errors"]
        assert w.gauge("unpriced") == summary["unpriced_requests"]
        assert w.gauge("estimated") == summary["estimated_requests"]
        expect(w.page.locator("#g-requests .value")).to_have_text(f"{summary['requests']:,}")
        expect(w.page.locator("#g-cost .value")).to_have_text(f"${summary['cost_usd']:,.2f}")
        _clean(w)


def test_every_model_in_usage_appears(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/" + CUSTOM) as w:
        w.wait_loaded()
        usage = api.get("/api/usage", group_by="model", since=SINCE, until=UNTIL)
        models = {s["group"] for s in usage["series"]}
        assert len(models) == 5
        assert set(_rows(w, "breakdown")) == models
        legend = w.page.inner_text("#chart-legend")
        cache = w.page.inner_text("#cache")
        for model in models:
            assert model in legend
            assert model in cache
        _clean(w)


def test_a_filter_click_narrows_every_panel_and_the_url_round_trips(
    browser: Browser, api: Served
) -> None:
    model = "gpt-4.1"
    with open_page(browser, api.url + "/" + CUSTOM) as w:
        w.wait_loaded()
        before = w.gauge("requests")
        loads = w.loads()
        w.page.click(f"#breakdown tbody tr[data-value='{model}'] button")
        w.wait_loaded(loads)
        url = w.page.url
        assert parse_qs(urlsplit(url).fragment)["model"] == [model]
        narrowed = api.get("/api/summary", since=SINCE, until=UNTIL, model=model)
        assert 0 < narrowed["requests"] < before
        assert w.gauge("requests") == narrowed["requests"]
        assert w.gauge("cost") == pytest.approx(narrowed["cost_usd"], abs=1e-12)
        assert _rows(w, "breakdown") == [model]
        assert _rows(w, "cache") == [model]
        assert w.page.inner_text("#chart-legend").startswith(model)
        feed_models = w.page.eval_on_selector_all(
            "#feed tbody tr td:nth-child(3)", "ts => ts.map(t => t.textContent)"
        )
        assert feed_models and all(t.endswith(f"/ {model}") for t in feed_models)
        expect(w.page.locator("#filters .chip")).to_have_count(1)
        _clean(w)
    with open_page(browser, url) as again:
        again.wait_loaded()
        assert again.gauge("requests") == narrowed["requests"]
        assert _rows(again, "breakdown") == [model]
        loads = again.loads()
        again.page.click("#filters .chip")
        again.wait_loaded(loads)
        assert "model=" not in again.page.url
        assert again.gauge("requests") == before
        _clean(again)


def test_laps_start_end_and_compare(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/" + CUSTOM) as w:
        w.wait_loaded()
        for name in ("before", "after"):
            loads = w.loads()
            w.page.fill("#lap-start input[name=name]", name)
            w.page.click("#lap-start button[type=submit]")
            w.wait_loaded(loads)
            api.add(
                [
                    make_event(
                        time.time_ns(),
                        model="gpt-4o-mini",
                        input_tokens=1000 if name == "before" else 3000,
                    )
                ]
            )
        loads = w.loads()
        w.page.click("#lap-end")
        w.wait_loaded(loads)
        laps = api.get("/api/laps")["laps"][-2:]
        assert [lap["name"] for lap in laps] == ["before", "after"]
        assert all(lap["ended_at"] for lap in laps)
        diff = w.page.locator("#lap-diff")
        expect(diff.locator("thead th")).to_have_text(["", "before", "after"])
        expect(diff.locator("tbody tr", has_text="Input tokens").locator("td")).to_have_text(
            ["1,000", "3,000"]
        )
        expect(diff.locator("tbody tr", has_text="Models").locator("td")).to_have_text(
            ["gpt-4o-mini (1)", "gpt-4o-mini (1)"]
        )
        expect(w.page.locator("#laps tbody tr")).to_have_count(len(api.get("/api/laps")["laps"]))
        w.page.screenshot(path=artifacts_dir() / "dashboard-laps.png", full_page=True)
        _clean(w)


def test_live_calls_reach_feed_and_totals_without_reload(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/#range=1h") as w:
        w.wait_loaded()
        w.page.wait_for_selector("#conn.live")
        before = w.gauge("requests")
        event = make_event(time.time_ns(), model="gpt-4o", process="live-probe", input_tokens=4242)
        api.add([event])
        row = w.page.locator("#feed tbody tr", has_text="live-probe")
        expect(row).to_have_count(1, timeout=2000)
        w.page.wait_for_function(
            "n => Number(document.querySelector('#g-requests').dataset.value) > n",
            arg=before,
            timeout=2000,
        )
        assert w.gauge("requests") == before + 1
        row.click()
        dialog = w.page.locator("#event-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(event.id)
        _clean(w)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("locked") / "events.db", token=TOKEN)
    served.add(fixture_events(NOW_NS, n=50))
    yield served
    served.stop()


def test_with_a_token_the_page_refuses_without_it_and_works_with_it(
    browser: Browser, locked: Served
) -> None:
    with open_page(browser, locked.url + "/") as w:
        expect(w.page.locator("#login")).to_be_visible()
        assert w.page.get_attribute("body", "data-loaded") is None
        w.page.fill("#login input[name=token]", "wrong")
        w.page.click("#login button[type=submit]")
        expect(w.page.locator("#login-error")).to_have_text("That token was refused.")
        w.page.fill("#login input[name=token]", TOKEN)
        w.page.click("#login button[type=submit]")
        w.wait_loaded()
        expect(w.page.locator("#login")).to_be_hidden()
        assert w.gauge("requests") == 50 or w.gauge("requests") >= 0
        assert TOKEN not in w.page.url and all(TOKEN not in u for u in w.requests)
        assert w.page.evaluate("sessionStorage.getItem('lumen-sniff.token')") == TOKEN
        # Refused attempts are 401s (logged by the browser); nothing else failed.
        assert all("401" in e for e in w.errors), w.errors
        assert w.failed == []
        # Reloading the tab keeps the session: no second prompt.
        loads = 0
        w.page.reload()
        w.wait_loaded(loads)
        expect(w.page.locator("#login")).to_be_hidden()


def test_optional_panels_appear_when_the_api_offers_them(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    status = {
        "ready": True,
        "dropped": {"ringbuf_full": 3},
        "unseen": [{"pid": 4242, "process": "go-agent", "reason": "Go crypto/tls"}],
    }
    served = Served(tmp_path_factory.mktemp("optional") / "events.db", status=lambda: status)
    budgets = {
        "budgets": [{"name": "team-a", "period": "month", "limit_usd": 10.0, "spent_usd": 12.5}]
    }
    served.app.add_api_route("/api/budgets", lambda: budgets, methods=["GET"])
    try:
        served.add(fixture_events(NOW_NS, n=40))
        with open_page(browser, served.url + "/") as w:
            w.wait_loaded()
            expect(w.page.locator("#budgets-panel")).to_be_visible()
            expect(w.page.locator("#budgets")).to_contain_text("team-a (month)")
            expect(w.page.locator("#budgets [role=progressbar]")).to_have_attribute(
                "aria-valuenow", "125"
            )
            expect(w.page.locator("#g-unseen")).to_contain_text("go-agent")
            expect(w.page.locator("#g-capture")).to_contain_text("ringbuf_full: 3")
            _clean(w)
    finally:
        served.stop()


def test_optional_panels_stay_hidden_without_them(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/") as w:
        w.wait_loaded()
        expect(w.page.locator("#budgets-panel")).to_be_hidden()
        expect(w.page.locator("#g-unseen")).to_have_count(0)
        assert not any("/api/budgets" in u for u in w.requests)
        _clean(w)


def test_custom_range_and_sorting(browser: Browser, api: Served) -> None:
    with open_page(browser, api.url + "/#range=24h") as w:
        w.wait_loaded()
        w.page.click("[data-range=custom]")
        form = w.page.locator("#custom")
        expect(form).to_be_visible()
        since = time.strftime("%Y-%m-%dT%H:%M", time.localtime(NOW_NS // 10**9 - 30 * 3600))
        until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(NOW_NS // 10**9 - 2 * 3600))
        form.locator("input[name=since]").fill(since)
        form.locator("input[name=until]").fill(until)
        loads = w.loads()
        form.locator("button[type=submit]").click()
        w.wait_loaded(loads)
        # A periodic refresh of the old range can land first: wait for the load
        # of the custom range itself (the body's range follows the URL's).
        w.page.wait_for_function(
            "() => { const q = new URLSearchParams(location.hash.slice(1));"
            " return q.get('range') === 'custom'"
            " && document.body.dataset.since === q.get('since'); }",
            timeout=15_000,
        )
        fragment = parse_qs(urlsplit(w.page.url).fragment)
        assert fragment["range"] == ["custom"]
        body_since = w.page.get_attribute("body", "data-since")
        body_until = w.page.get_attribute("body", "data-until")
        assert [body_since, body_until] == [fragment["since"][0], fragment["until"][0]]
        summary = api.get("/api/summary", since=body_since, until=body_until)
        assert 0 < summary["requests"] < len(fixture_events(NOW_NS))
        assert w.gauge("requests") == summary["requests"]
        w.page.click("#breakdown thead button:text-is('Requests')")
        counts = w.page.eval_on_selector_all(
            "#breakdown tbody tr td:nth-child(2)",
            "ts => ts.map(t => Number(t.textContent.replace(/,/g, '')))",
        )
        assert counts == sorted(counts, reverse=True) and len(counts) == 5
        expect(w.page.locator("#breakdown thead th[aria-sort=descending]")).to_contain_text(
            "Requests"
        )
        _clean(w)
