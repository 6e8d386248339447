"""Filtered aggregates (store/aggregates.py) equal brute-force sums over the raw events.

Each filter shape takes a different path (rollups + edges, rollups of one
value, raw events only); all must give exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from lumen_sniff.model import UsageEvent
from lumen_sniff.store import EventFilter, Store, open_store
from lumen_sniff.store.aggregates import grouped
from tests.support.events import HOUR_NS, MIN_NS, T0, brute_totals, random_events

EVENTS = random_events(700, seed=11, start_ns=T0, span_ns=60 * HOUR_NS)
LO, HI = T0 + 23 * MIN_NS, T0 + 57 * HOUR_NS + 41 * MIN_NS
WIDTHS = {"one": None, "minute": MIN_NS, "hour": HOUR_NS, "day": 24 * HOUR_NS}

FILTERS = {
    "none": EventFilter(),
    "model (rollup value)": EventFilter(model="gpt-4o-mini"),
    "container (rollup value)": EventFilter(container="c0ffee"),
    "model and tenant (raw)": EventFilter(model="claude-sonnet-4", tenant="acme"),
    "status (raw)": EventFilter(status=429),
    "errors only (raw)": EventFilter(errors_only=True),
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(tmp_path / "events.db", retention_days=0)
    yield s
    await s.close()


async def add(store: Store, events: list[UsageEvent]) -> None:
    for e in events:
        assert store.writer.submit(e)
    await store.writer.flush()


def _matches(e: UsageEvent, f: EventFilter) -> bool:
    if not f.since_ns <= e.started_ns < f.until_ns:
        return False
    for name in ("provider", "model", "process", "api_key_id", "tenant", "container", "status"):
        want = getattr(f, name)
        if want is not None and getattr(e, name) != want:
            return False
    failed = e.status >= 400 or e.status == 0 or e.error_type is not None
    return f.errors_only is None or failed == f.errors_only


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("group_by", [None, "model", "tenant", "container"])
@pytest.mark.parametrize("which", list(FILTERS))
async def test_grouped_equals_brute_force(
    store: Store, which: str, group_by: str | None, width: str
) -> None:
    await add(store, EVENTS)
    f = replace(FILTERS[which], since_ns=LO, until_ns=HI)
    w = WIDTHS[width]
    expected: dict[tuple[int, str], list[UsageEvent]] = {}
    for e in EVENTS:
        if _matches(e, f):
            t = 0 if w is None else e.started_ns - e.started_ns % w
            g = "" if group_by is None else getattr(e, group_by) or ""
            expected.setdefault((t, g), []).append(e)
    assert expected
    got = await store.aggregate(f, group_by, w)
    assert set(got) == set(expected)
    for key, evs in expected.items():
        assert got[key] == brute_totals(evs), key


async def test_empty_range_and_unknown_dimension(store: Store) -> None:
    await add(store, EVENTS[:10])
    assert await store.aggregate(EventFilter(since_ns=T0, until_ns=T0), None, None) == {}
    with pytest.raises(ValueError, match="group_by"):
        await grouped(store._rconn, EventFilter(), "prompt", None)
