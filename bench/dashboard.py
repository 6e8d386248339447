"""Dashboard benchmark: a real chromium against the API over a month of a million events.

Prints, from a local API (uvicorn on 127.0.0.1, as the daemon runs it) over a
database of 1,000,000 events spanning 30 days (generated as bench/store.py does):

1. first meaningful paint: navigation start → header gauges drawn, and → every
   panel drawn (targets < 1 s), for the default 24 h view and the 30 d view;
2. range change: click a preset → every panel redrawn (target < 500 ms), per
   range, with a model filter (rollups) and a model+process filter (raw events);
3. the live feed at 50 calls/s for 10 s: the longest gap between animation
   frames, the rows kept, and the API requests the page made meanwhile.

Usage: ``python bench/dashboard.py [--events N] [--db PATH] [--runs N]``
(``make setup`` first: it builds the page and installs Playwright; the browser
is Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from playwright.sync_api import Page, sync_playwright
from store import DAY_NS, Server, events, fill  # bench/store.py

from lumen_sniff.store import Store, open_store

_RANGE_CHANGE_JS = """
async (target) => {
  const n = Number(document.body.dataset.loaded);
  const t0 = performance.now();
  document.querySelector(target).click();
  await new Promise((done) => {
    const watch = new MutationObserver(() => {
      if (Number(document.body.dataset.loaded) > n) { watch.disconnect(); done(); }
    });
    watch.observe(document.body, { attributes: true });
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}
"""

_HASH_CHANGE_JS = """
async (hash) => {
  const n = Number(document.body.dataset.loaded);
  const t0 = performance.now();
  location.hash = hash;
  await new Promise((done) => {
    const watch = new MutationObserver(() => {
      if (Number(document.body.dataset.loaded) > n) { watch.disconnect(); done(); }
    });
    watch.observe(document.body, { attributes: true });
  });
  await new Promise((r) => requestAnimationFrame(() => r()));
  return performance.now() - t0;
}
"""

_FRAMES_JS = """
(ms) => new Promise((done) => {
  let last = performance.now(), worst = 0, frames = 0;
  const end = last + ms;
  const tick = (t) => {
    worst = Math.max(worst, t - last); last = t; frames++;
    if (t < end) requestAnimationFrame(tick); else done({ worst, frames });
  };
  requestAnimationFrame(tick);
})
"""


def _mark(page: Page, name: str) -> float:
    return float(page.evaluate(f"performance.getEntriesByName('{name}')[0].startTime"))


def first_paint(page: Page, url: str) -> tuple[float, float]:
    page.goto("about:blank")  # a real navigation each time, not a fragment change
    page.goto(url)
    page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1", timeout=60_000)
    return _mark(page, "lumen:gauges"), _mark(page, "lumen:loaded")


def _stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    median = statistics.median(ordered)
    return f"median {median:7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms"


def live_load(page: Page, store: Store, loop: asyncio.AbstractEventLoop, seconds: int) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    base = page.url.split("#")[0]
    page.goto("about:blank")
    page.goto(base + "#range=1h")
    page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1")
    page.wait_for_selector("#conn.live")
    requests.clear()
    stop = threading.Event()

    produced = [0]

    def produce() -> None:
        # 50 calls/s in batches of 5 every 100 ms (on a fixed schedule), stamped
        # now, through the real writer.
        start = time.monotonic()
        salt = time.time_ns()  # fresh ids on every run: a reused database skips known ids
        while not stop.is_set():
            batch = list(events(5, time.time_ns(), 10**6, seed=salt + produced[0]))
            asyncio.run_coroutine_threadsafe(fill(store, iter(batch)), loop).result()
            produced[0] += len(batch)
            time.sleep(max(0.0, start + produced[0] / 50 - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    frames = page.evaluate(_FRAMES_JS, seconds * 1000)
    stop.set()
    producer.join()
    rows = page.eval_on_selector_all("#feed tbody tr", "rs => rs.length")
    rate = page.inner_text("#feed-rate")
    api = [u for u in requests if "/api/" in u]
    print(
        f"live feed at 50 calls/s ({produced[0]:,} calls stored in {seconds} s): "
        f"longest frame gap {frames['worst']:.0f} ms "
        f"over {frames['frames']} frames; feed rows kept {rows}; page shows {rate}; "
        f"{len(api)} API requests ({len(api) / seconds:.1f}/s, none for raw events in bulk)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--live-seconds", type=int, default=10)
    parser.add_argument("--db", type=Path, default=None, help="reuse (or fill) this database")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lumen-bench-") as tmp:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def call(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        store: Store = call(open_store(args.db or Path(tmp) / "month.db", retention_days=0))
        if store.event_count < args.events:
            now = time.time_ns()
            count, seconds = call(fill(store, events(args.events, now - 30 * DAY_NS, 30 * DAY_NS)))
            print(f"filled {count:,} events over 30 days in {seconds:.1f}s")
        print(f"database: {store.event_count:,} events, {store.stats()['size_bytes']:,} bytes")
        server = Server(store, loop)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = browser.new_page(bypass_csp=True, viewport={"width": 1400, "height": 900})
                first_paint(page, server.url + "/#range=24h")  # warm the OS and SQLite caches
                for view in ("24h", "30d"):
                    gauges, loaded = [], []
                    for _ in range(args.runs):
                        g, full = first_paint(page, server.url + f"/#range={view}")
                        gauges.append(g)
                        loaded.append(full)
                    print(f"first paint, {view:>3} view, header gauges:  {_stats(gauges)}")
                    print(f"first paint, {view:>3} view, every panel:    {_stats(loaded)}")
                page.goto(server.url + "/#range=24h")
                page.wait_for_function("Number(document.body.dataset.loaded || 0) >= 1")
                for target in ("1h", "24h", "7d", "30d"):
                    times = []
                    for _ in range(args.runs):
                        other = "24h" if target != "24h" else "7d"
                        page.evaluate(_RANGE_CHANGE_JS, f"[data-range='{other}']")
                        times.append(page.evaluate(_RANGE_CHANGE_JS, f"[data-range='{target}']"))
                    print(f"range change to {target:>3} (all panels redrawn): {_stats(times)}")
                times = []
                for _ in range(args.runs):
                    page.evaluate(_RANGE_CHANGE_JS, "[data-range='7d']")
                    page.evaluate(
                        _RANGE_CHANGE_JS, "#breakdown tbody tr[data-value='gpt-4.1'] button"
                    )
                    times.append(page.evaluate(_RANGE_CHANGE_JS, "[data-range='30d']"))
                    page.evaluate(_RANGE_CHANGE_JS, "#filters .chip")
                print(f"range change to 30d, model filter:     {_stats(times)}")
                times = []
                two = "#range={}&dim=model&table=model&model=gpt-4.1&process=python3"
                for _ in range(args.runs):
                    page.evaluate(_HASH_CHANGE_JS, two.format("7d"))
                    times.append(page.evaluate(_HASH_CHANGE_JS, two.format("30d")))
                print(f"range change to 30d, model+process filter (raw events): {_stats(times)}")
                live_load(page, store, loop, args.live_seconds)
                browser.close()
        finally:
            server.server.should_exit = True
            server.future.result()
            call(store.close())
            loop.call_soon_threadsafe(loop.stop)
            thread.join()


if __name__ == "__main__":
    main()
