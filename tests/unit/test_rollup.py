"""Hour and minute rollups answer exactly what the raw events answer, for random event sets.

Hypothesis draws events (every group dimension with NULLs, errors, unpriced
calls next to $0 ones, estimated usage, cache and reasoning tokens) and a
query (range, filter, grouping, bucket width); the store's answer, whichever
mix of hour rollups, minute rollups and raw partial minutes it reads, must
equal sums computed one event at a time. The version-6 backfill must build
the same minute rows as the writer's in-memory sums.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.store import EventFilter, open_store
from lumen_sniff.store.rollup import cover, units_for
from lumen_sniff.store.schema import MIGRATIONS
from tests.support.events import HOUR_NS, MIN_NS, T0, brute_totals, make_event

SPAN_NS = 3 * HOUR_NS
"""Events fall in [T0, T0 + SPAN_NS): a few hours, so buckets hold several events."""

_DIMS = {
    "provider": ["openai", "anthropic"],
    "model": ["gpt-4o-mini", "o3", None],
    "process": ["python3", None],
    "api_key_id": ["k:1", None],
    "tenant": ["acme", None],
    "container": ["c0ffee", None],
    "service": ["billing", None],
}


def _usd(nano: int) -> Decimal:
    return Decimal(nano).scaleb(-9)


@st.composite
def events(draw: st.DrawFn) -> UsageEvent:
    # Times cluster on minute and hour edges, where a range split could go wrong.
    at = draw(
        st.one_of(
            st.integers(0, SPAN_NS - 1),
            st.integers(0, SPAN_NS // MIN_NS - 1).map(lambda m: m * MIN_NS),
            st.integers(0, SPAN_NS // MIN_NS - 1).map(lambda m: m * MIN_NS - 1),
        )
    )
    cache_read = draw(st.integers(0, 50))
    return make_event(
        T0 + max(at, 0),
        **{d: draw(st.sampled_from(v)) for d, v in _DIMS.items()},
        status=draw(st.sampled_from([200, 200, 429, 0])),
        input_tokens=cache_read + draw(st.integers(0, 10_000)),
        output_tokens=draw(st.integers(0, 2_000)),
        cache_read_tokens=cache_read,
        cache_write_tokens=draw(st.integers(0, 30)),
        reasoning_tokens=draw(st.integers(0, 70)),
        # None is unpriced (never $0); Decimal(0) is a real $0 price.
        cost_usd=draw(st.one_of(st.none(), st.just(Decimal(0)), st.integers(1, 10**7).map(_usd))),
        usage_source=draw(st.sampled_from(list(UsageSource))),
    )


@st.composite
def queries(draw: st.DrawFn) -> tuple[EventFilter, str | None, int | None]:
    lo = T0 + draw(st.integers(-MIN_NS, SPAN_NS))
    hi = lo + draw(st.integers(1, SPAN_NS + HOUR_NS))
    filters = draw(
        st.dictionaries(st.sampled_from(list(_DIMS)), st.sampled_from(["openai", "o3", "acme"]))
        | st.dictionaries(
            st.sampled_from(list(_DIMS)), st.sampled_from(["python3", "k:1"]), max_size=2
        )
    )
    status = draw(st.sampled_from([None, None, 429]))
    group_by = draw(st.sampled_from([None, *_DIMS]))
    width = draw(st.sampled_from([None, MIN_NS, 2 * MIN_NS, 90 * 10**9, HOUR_NS, 24 * HOUR_NS]))
    f = EventFilter(since_ns=lo, until_ns=hi, status=status, **filters)
    return f, group_by, width


def _matches(e: UsageEvent, f: EventFilter) -> bool:
    if not f.since_ns <= e.started_ns < f.until_ns:
        return False
    return all(
        getattr(f, name) is None or getattr(e, name) == getattr(f, name)
        for name in (*_DIMS, "status")
    )


def _minute_rows(path: Path) -> set[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return set(conn.execute("SELECT * FROM rollups_minute"))


# Many examples allocate a lot: garbage collection may run during this test and
# finalise an event loop an earlier async test left unclosed (test_store.py
# leaves one); that warning is not this test's.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evs=st.lists(events(), min_size=1, max_size=60),
    qs=st.lists(queries(), min_size=1, max_size=8),
    floor_h=st.integers(0, 4),
)
def test_rollups_answer_what_raw_events_answer(
    evs: list[UsageEvent], qs: list[tuple[EventFilter, str | None, int | None]], floor_h: int
) -> None:
    # The minute retention pruned the minute rollups before ``floor`` (hour
    # rollups and events kept): those minutes must come from raw events.
    floor = T0 + floor_h * HOUR_NS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"

        async def run() -> None:
            store = await open_store(path, retention_days=0, batch_max=17)
            try:
                for e in evs:
                    assert store.writer.submit(e)
                await store.writer.flush()
                store.minute_retention_days = 1
                assert await store.prune(now_ns=floor + 24 * HOUR_NS) == 0
                assert store.minute_floor_ns == floor
                for f, group_by, width in qs:
                    expected: dict[tuple[int, str], list[UsageEvent]] = {}
                    for e in evs:
                        if _matches(e, f):
                            t = 0 if width is None else e.started_ns - e.started_ns % width
                            g = "" if group_by is None else getattr(e, group_by) or ""
                            expected.setdefault((t, g), []).append(e)
                    got = await store.aggregate(f, group_by, width)
                    assert set(got) == set(expected)
                    for key, matched in expected.items():
                        want = brute_totals(matched)
                        assert got[key] == want, (f, group_by, width, key)
                        # No price is null, never $0; a real $0 price is 0.
                        shown = got[key].to_dict(null_cost_when_unpriced=True)["cost_usd"]
                        assert (shown is None) == (want.priced == 0)
            finally:
                await store.close()

        asyncio.run(run())
        written = _minute_rows(path)
        assert all(int(str(row[1])) >= floor for row in written)
        with sqlite3.connect(path, isolation_level=None) as conn:
            conn.execute("DROP TABLE rollups_minute")
            conn.executescript(MIGRATIONS[5])
        assert {row for row in _minute_rows(path) if int(str(row[1])) >= floor} == written


@given(st.integers(-10 * HOUR_NS, 10 * HOUR_NS), st.integers(0, 30 * HOUR_NS))
def test_cover_tiles_the_range_with_aligned_spans(lo: int, length: int) -> None:
    hi = lo + length
    for width in (None, MIN_NS, HOUR_NS, 24 * HOUR_NS, 90 * 10**9):
        spans = cover(lo, hi, units_for(width))
        assert [s[1] for s in spans[1:]] == [s[2] for s in spans[:-1]]  # contiguous
        assert (spans[0][1], spans[-1][2]) == (lo, hi) if spans else lo == hi
        for unit, start, end in spans:
            assert start < end
            if unit is not None:
                assert start % unit == end % unit == 0
                assert width is None or width % unit == 0
