"""The SQLite store: writer, rollups, queries, retention, laps, file modes.

Each test uses its own database file in tmp_path (no sockets).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from lumen_sniff.errors import StoreError
from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.store import EventFilter, Store, open_store
from lumen_sniff.store.queries import export_events, split_range
from lumen_sniff.store.rollup import UPSERT_SQL, batch_deltas
from lumen_sniff.store.rows import (
    EVENT_COLUMNS,
    HOUR_NS,
    event_to_row,
    pusd_from_usd,
    usd_from_pusd,
)
from lumen_sniff.store.schema import GROUP_DIMS, MIGRATIONS, SCHEMA_VERSION
from tests.support.events import MIN_NS, T0, brute_totals, make_event, random_events


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(tmp_path / "state" / "events.db", retention_days=0)
    yield s
    await s.close()


async def add(store: Store, events: Iterable[UsageEvent]) -> None:
    for e in events:
        assert store.writer.submit(e)
    await store.writer.flush()


# ------------------------------------------------------------------ rows, ranges


def test_pico_dollars_are_exact() -> None:
    assert pusd_from_usd(Decimal("0.000027")) == 27_000_000
    assert pusd_from_usd(Decimal("0.0000000375")) == 37_500
    assert usd_from_pusd(27_000_000) == Decimal("0.000027")
    assert usd_from_pusd(0) == Decimal(0)


def test_split_range_edges_and_whole_hours() -> None:
    h = HOUR_NS
    assert split_range(T0 + 10, T0 + 3 * h + 5) == (
        [(T0 + 10, T0 + h), (T0 + 3 * h, T0 + 3 * h + 5)],
        (T0 + h, T0 + 3 * h),
    )
    assert split_range(T0, T0 + 2 * h) == ([], (T0, T0 + 2 * h))
    assert split_range(T0 + 5, T0 + h - 5) == ([(T0 + 5, T0 + h - 5)], None)
    assert split_range(T0 + 5, T0 + h + 5) == ([(T0 + 5, T0 + h + 5)], None)


# -------------------------------------------------------------------- writer


async def test_events_round_trip_exactly(store: Store) -> None:
    e = make_event(
        T0 + 123_456_000,
        cost_usd=Decimal("0.000000123456789012"),
        provider_cost_usd=Decimal("0.0002"),
        extra={"finish": "stop"},
        container="c0ffee",
        unit="app.service",
        error_type=None,
        complete=False,
    )
    await add(store, [e])
    [back] = await store.events()
    assert back == e
    assert store.event_count == 1


async def test_summary_is_exact_and_counts_unpriced_apart(store: Store) -> None:
    events = [make_event(T0 + i * MIN_NS, cost_usd=Decimal("0.1")) for i in range(3)]
    events += [make_event(T0 + 5 * MIN_NS, cost_usd=None, model="mystery-model")]
    events += [
        make_event(
            T0 + 6 * MIN_NS,
            cost_usd=None,
            status=429,
            input_tokens=0,
            output_tokens=0,
            usage_source=UsageSource.NONE,
        )
    ]
    events += [make_event(T0 + 7 * MIN_NS, usage_source=UsageSource.ESTIMATED, cost_usd=None)]
    await add(store, events)
    totals = await store.summary()
    assert totals.cost_usd == Decimal("0.3")
    assert totals.to_dict() == {
        "requests": 6,
        "errors": 1,
        "cost_usd": 0.3,
        "input_tokens": 500,
        "output_tokens": 100,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "unpriced_requests": 3,
        "estimated_requests": 1,
    }


async def test_queue_full_is_a_counted_drop(tmp_path: Path) -> None:
    s = await open_store(tmp_path / "db", retention_days=0, queue_size=10)
    try:
        results = [s.writer.submit(make_event(T0 + i)) for i in range(25)]
        assert results.count(True) == 10
        assert s.writer.drops == {"store_queue_full": 15}
        await s.writer.flush()
        assert s.event_count == 10
        assert s.stats()["drops"] == {"store_queue_full": 15}
    finally:
        await s.close()
    assert s.writer.submit(make_event(T0)) is False
    assert s.writer.drops == {"store_queue_full": 15, "store_closed": 1}


async def test_group_commit_batches_and_listener_sees_only_committed(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = await open_store(path, retention_days=0, batch_max=100, batch_wait_s=0.2)
    seen: list[int] = []
    in_db: list[int] = []

    class Listener:
        def committed(self, events: object) -> None:
            assert isinstance(events, list)
            seen.append(len(events))
            with sqlite3.connect(path) as conn:
                in_db.append(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

        def closed(self) -> None:
            seen.append(-1)

    s.writer.add_listener(Listener())
    try:
        for i in range(250):
            s.writer.submit(make_event(T0 + i))
        await s.writer.flush()
        assert seen == [100, 100, 50]
        assert in_db == [100, 200, 250]
        assert s.writer.batches == 3
    finally:
        await s.close()
    assert seen[-1] == -1


async def test_close_commits_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = await open_store(path, retention_days=0)
    for i in range(5000):
        s.writer.submit(make_event(T0 + i * 1000))
    await s.close()  # no flush: close must drain
    s2 = await open_store(path, retention_days=0)
    try:
        assert s2.event_count == 5000
        assert (await s2.summary()).requests == 5000
    finally:
        await s2.close()


# -------------------------------------------------------------------- queries


async def test_rollups_plus_edges_equal_raw_sums(store: Store) -> None:
    span = 3 * 24 * HOUR_NS
    events = random_events(3000, seed=7, start_ns=T0, span_ns=span)
    await add(store, events)
    rng = random.Random(11)
    ranges = [(0, 2**63 - 1), (T0, T0 + span), (T0 + 1, T0 + span - 1)]
    ranges += [
        tuple(sorted((T0 + rng.randrange(span), T0 + rng.randrange(span)))) for _ in range(40)
    ]
    for lo, hi in ranges:
        expected = brute_totals(e for e in events if lo <= e.started_ns < hi)
        assert await store.summary(lo, hi) == expected, (lo, hi)


async def test_rollup_table_matches_events_table(store: Store, tmp_path: Path) -> None:
    await add(store, random_events(2000, seed=3, start_ns=T0, span_ns=30 * HOUR_NS))
    with sqlite3.connect(store.path) as conn:
        raw = conn.execute(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_pusd), SUM(error) "
            "FROM events"
        ).fetchone()
        for dim in ("total", "provider", "model", "process", "api_key_id", "tenant", "container"):
            rolled = conn.execute(
                "SELECT SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost_pusd), "
                "SUM(errors) FROM rollups WHERE dim = ?",
                (dim,),
            ).fetchone()
            assert rolled == raw, dim


@pytest.mark.parametrize("bucket", ["minute", "hour", "day"])
@pytest.mark.parametrize("group_by", ["model", "provider", "process", "api_key_id", "tenant"])
async def test_usage_series_match_brute_force(store: Store, group_by: str, bucket: str) -> None:
    events = random_events(600, seed=5, start_ns=T0, span_ns=50 * HOUR_NS)
    await add(store, events)
    width = {"minute": MIN_NS, "hour": HOUR_NS, "day": 24 * HOUR_NS}[bucket]
    lo, hi = T0 + 17 * MIN_NS, T0 + 49 * HOUR_NS + 3 * MIN_NS
    expected: dict[tuple[str | None, int], list[UsageEvent]] = {}
    for e in events:
        if lo <= e.started_ns < hi:
            key = (getattr(e, group_by), e.started_ns - e.started_ns % width)
            expected.setdefault(key, []).append(e)
    series = await store.usage(group_by, bucket, lo, hi)
    got = {(s.group, t): p for s in series for t, p in s.points.items()}
    assert set(got) == set(expected)
    for key, evs in expected.items():
        assert got[key] == brute_totals(evs), key
    assert [s.requests for s in series] == sorted((s.requests for s in series), reverse=True)


async def test_usage_rejects_unknown_names(store: Store) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await store.usage("pid", "hour")
    with pytest.raises(ValueError, match="bucket"):
        await store.usage("model", "week")


async def test_event_filters_and_order(store: Store) -> None:
    a = make_event(T0 + 1, provider="anthropic", model="claude-sonnet-4", tenant="acme")
    b = make_event(T0 + 2, status=429, api_key_id="k:9", process="node")
    c = make_event(T0 + 3, status=200)
    await add(store, [a, b, c])
    ids = lambda evs: [e.id for e in evs]  # noqa: E731
    assert ids(await store.events()) == [c.id, b.id, a.id]
    assert ids(await store.events(limit=2)) == [c.id, b.id]
    assert ids(await store.events(EventFilter(provider="anthropic"))) == [a.id]
    assert ids(await store.events(EventFilter(model="claude-sonnet-4"))) == [a.id]
    assert ids(await store.events(EventFilter(process="node"))) == [b.id]
    assert ids(await store.events(EventFilter(api_key_id="k:9"))) == [b.id]
    assert ids(await store.events(EventFilter(tenant="acme"))) == [a.id]
    assert ids(await store.events(EventFilter(status=429))) == [b.id]
    assert ids(await store.events(EventFilter(errors_only=True))) == [b.id]
    assert ids(await store.events(EventFilter(errors_only=False))) == [c.id, a.id]
    assert ids(await store.events(EventFilter(since_ns=T0 + 2, until_ns=T0 + 3))) == [b.id]
    assert await store.oldest_ns() == T0 + 1


async def test_export_pages_oldest_first(store: Store) -> None:
    # Equal start times across page edges: keyset pagination must not skip or repeat.
    events = [make_event(T0 + (i // 3)) for i in range(50)]
    await add(store, events)
    got = [e.id async for e in export_events(store._rconn, EventFilter(), page=7)]
    assert got == [e.id for e in events]
    window = [e.id async for e in store.export(EventFilter(since_ns=T0 + 2, until_ns=T0 + 4))]
    assert window == [e.id for e in events[6:12]]


# ------------------------------------------------------------ laps, retention


async def test_laps(store: Store) -> None:
    await store.start_lap("baseline", at_ns=T0)
    await store.start_lap("cached", at_ns=T0 + HOUR_NS)
    await add(
        store,
        [
            make_event(T0 + 5, cost_usd=Decimal("0.5")),
            make_event(T0 + HOUR_NS + 5, cost_usd=Decimal("0.25"), cache_read_tokens=80),
            make_event(T0 + 2 * HOUR_NS + 5, cost_usd=None),
        ],
    )
    first, second = await store.laps()
    assert (first.name, first.started_ns, first.ended_ns) == ("baseline", T0, T0 + HOUR_NS)
    assert (first.totals.requests, first.totals.cost_usd) == (1, Decimal("0.5"))
    assert (second.name, second.ended_ns) == ("cached", None)
    assert second.totals.requests == 2
    assert second.totals.cost_usd == Decimal("0.25")
    assert second.totals.unpriced == 1
    assert second.totals.cache_read_tokens == 80


async def test_retention_prunes_events_and_rollups(tmp_path: Path) -> None:
    s = await open_store(tmp_path / "db", retention_days=5)
    now = T0 + 20 * 24 * HOUR_NS + 30 * MIN_NS
    old = [make_event(now - 9 * 24 * HOUR_NS + i) for i in range(30)]
    edge = [make_event(now - 5 * 24 * HOUR_NS - 10 * MIN_NS)]  # same hour as the cut-off
    new = [make_event(now - 2 * 24 * HOUR_NS + i) for i in range(20)]
    try:
        await add(s, old + edge + new)
        assert await s.prune(now_ns=now) == 30
        assert s.event_count == 21
        assert {e.id for e in await s.events(limit=100)} == {e.id for e in edge + new}
        assert (await s.summary()).requests == 21
        for table in ("rollups", "rollups_minute"):
            assert rollups_by_dim(s.path, table)["total"] == raw_sums(s.path)
            assert rollups_by_dim(s.path, table)["model"] == raw_sums(s.path)
        assert await s.prune(now_ns=now) == 0
    finally:
        await s.close()


async def test_minute_retention_prunes_only_old_minutes(tmp_path: Path) -> None:
    # Minute rollups older than minute_retention_days go; hour rollups and
    # events stay, and minute buckets over the pruned days come from raw events.
    now = time.time_ns()
    s = await open_store(tmp_path / "db", retention_days=0, minute_retention_days=2)
    old = random_events(200, seed=4, start_ns=now - 6 * 24 * HOUR_NS, span_ns=3 * HOUR_NS)
    new = random_events(100, seed=5, start_ns=now - 24 * HOUR_NS, span_ns=3 * HOUR_NS)
    try:
        await add(s, old + new)
        assert await s.prune(now_ns=now) == 0
        floor = s.minute_floor_ns
        assert floor == now - 2 * 24 * HOUR_NS - (now - 2 * 24 * HOUR_NS) % HOUR_NS
        assert s.stats()["minute_retention_days"] == 2
        with sqlite3.connect(s.path) as conn:
            minutes = [r[0] for r in conn.execute("SELECT bucket_ns FROM rollups_minute")]
        assert minutes and min(minutes) >= floor
        assert rollups_by_dim(s.path)["total"] == raw_sums(s.path)  # hours whole
        assert s.event_count == 300
        f = EventFilter(since_ns=now - 7 * 24 * HOUR_NS, until_ns=now)
        got = await s.aggregate(f, "model", MIN_NS)
        want: dict[tuple[int, str], list[UsageEvent]] = {}
        for e in old + new:
            want.setdefault((e.started_ns - e.started_ns % MIN_NS, e.model or ""), []).append(e)
        assert got == {key: brute_totals(evs) for key, evs in want.items()}
        # Another process (the CLI) reading the pruned file without the setting.
        reader = await open_store(s.path, retention_days=0)
        try:
            assert reader.minute_floor_ns == 0
            assert await reader.aggregate(f, "model", MIN_NS) == got
        finally:
            await reader.close()
    finally:
        await s.close()


async def test_retention_zero_keeps_everything(store: Store) -> None:
    await add(store, [make_event(1_000_000_000)])
    assert await store.prune(now_ns=T0) == 0
    assert store.event_count == 1


# ------------------------------------------------------- files, schema, errors


async def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "events.db"
    s = await open_store(path, retention_days=0)
    await add(s, [make_event(T0)])
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{path}-wal").stat().st_mode) == 0o600
    finally:
        await s.close()


async def test_existing_modes_are_tightened(tmp_path: Path) -> None:
    d = tmp_path / "loose"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    path = d / "events.db"
    path.touch()
    os.chmod(path, 0o644)
    s = await open_store(path, retention_days=0)
    await s.close()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_reopen_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "db"
    s = await open_store(path, retention_days=0)
    await add(s, random_events(100, seed=1, start_ns=T0, span_ns=HOUR_NS * 5))
    before = await s.summary()
    await s.close()
    s = await open_store(path, retention_days=0)
    try:
        assert await s.summary() == before
        assert s.stats()["schema_version"] == SCHEMA_VERSION
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        await s.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    await (await open_store(path, retention_days=0)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this lumen-sniff"):
        await open_store(path, retention_days=0)


async def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(path, retention_days=0)


async def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        await open_store(blocker / "db", retention_days=0)


async def test_concurrent_reads_during_writes(store: Store) -> None:
    async def writer() -> None:
        for i in range(4000):
            store.writer.submit(make_event(T0 + i))
            if i % 500 == 0:
                await asyncio.sleep(0)
        await store.writer.flush()

    async def reader() -> list[int]:
        seen = []
        for _ in range(20):
            totals = await store.summary()
            # Every event has 100 input tokens: a torn read would break this.
            assert totals.input_tokens == 100 * totals.requests
            seen.append(totals.requests)
            await asyncio.sleep(0.001)
        return seen

    _, seen = await asyncio.gather(writer(), reader())
    assert seen == sorted(seen)
    assert seen[0] < 4000
    assert (await store.summary()).requests == 4000


async def test_failed_transactions_are_retried_then_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store.writer, "retry_pauses_s", (0.0, 0.0, None))
    real_commit = store.writer._commit
    failures = iter([True, True, False, True, True, True])

    async def flaky(batch: list[UsageEvent]) -> list[UsageEvent]:
        if next(failures):
            raise sqlite3.OperationalError("database is locked")
        return await real_commit(batch)

    monkeypatch.setattr(store.writer, "_commit", flaky)
    await add(store, [make_event(T0 + 1), make_event(T0 + 2)])  # fails twice, then commits
    assert store.event_count == 2
    assert store.writer.drops == {}
    await add(store, [make_event(T0 + 3)])  # fails three times: dropped, counted
    assert store.writer.drops == {"store_write_error": 1}
    assert [e.started_ns for e in await store.events()] == [T0 + 2, T0 + 1]


# ----------------------------------------------------------------- duplicates


def rollups_by_dim(path: Path, table: str = "rollups") -> dict[str, tuple[int, ...]]:
    """Per dimension: sums of requests, tokens, cost, errors, unpriced over the rollups."""
    with sqlite3.connect(path) as conn:
        return {
            dim: conn.execute(
                "SELECT SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost_pusd), "
                f"SUM(errors), SUM(unpriced) FROM {table} WHERE dim = ?",
                (dim,),
            ).fetchone()
            for dim in ("total", *GROUP_DIMS)
        }


def raw_sums(path: Path) -> tuple[int, ...]:
    with sqlite3.connect(path) as conn:
        row: tuple[int, ...] = conn.execute(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_pusd), SUM(error), "
            "COUNT(*) - SUM(priced) FROM events"
        ).fetchone()
    return row


async def test_same_batch_twice_is_stored_once(store: Store) -> None:
    events = random_events(300, seed=21, start_ns=T0, span_ns=6 * HOUR_NS)
    seen: list[int] = []

    class Listener:
        def committed(self, events: Sequence[UsageEvent]) -> None:
            seen.append(len(events))

        def closed(self) -> None:
            pass

    store.writer.add_listener(Listener())
    await add(store, events)
    before = await store.summary()
    await add(store, events)  # a second replay of the same capture
    assert await store.summary() == before == brute_totals(events)
    assert store.event_count == 300
    assert store.writer.duplicates == 300
    assert store.stats()["duplicates"] == 300
    assert store.writer.committed_events == 300
    assert sum(seen) == 300  # listeners (metrics, live) never see a duplicate
    expected = raw_sums(store.path)
    assert expected[0] == 300
    assert rollups_by_dim(store.path) == {dim: expected for dim in ("total", *GROUP_DIMS)}


async def test_duplicates_mixed_with_new_events_and_within_a_batch(store: Store) -> None:
    old = random_events(50, seed=22, start_ns=T0, span_ns=3 * HOUR_NS)
    await add(store, old[:30])
    fresh = old[30:]
    twin = make_event(T0 + 7, id=fresh[0].id, input_tokens=99_999)  # same id, later in batch
    await add(store, [*old[:10], fresh[0], twin, *fresh[1:], *old[10:30]])
    assert store.writer.duplicates == 31
    assert store.event_count == 50
    assert await store.summary() == brute_totals(old)
    # The first submission of an id is the one kept.
    stored = {e.id: e for e in await store.events(limit=100)}
    assert stored == {e.id: e for e in old}
    expected = raw_sums(store.path)
    assert rollups_by_dim(store.path) == {dim: expected for dim in ("total", *GROUP_DIMS)}


async def test_duplicates_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "db"
    events = random_events(120, seed=23, start_ns=T0, span_ns=2 * HOUR_NS)
    s = await open_store(path, retention_days=0)
    await add(s, events)
    await s.close()
    s = await open_store(path, retention_days=0)  # a daemon restart that re-submits
    try:
        await add(s, events[60:])
        assert (s.writer.duplicates, s.event_count) == (60, 120)
        assert await s.summary() == brute_totals(events)
    finally:
        await s.close()


def _v1_database(path: Path, events: list[UsageEvent]) -> None:
    """A version-1 database as the version-1 writer left it: duplicates counted twice."""
    # Version 1 had every column but those later migrations added.
    keep = [i for i, c in enumerate(EVENT_COLUMNS) if c not in ("usage_flags", "service")]
    columns = [EVENT_COLUMNS[i] for i in keep]
    insert = (
        f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        rows = [event_to_row(e) for e in events]
        conn.executemany(insert, [tuple(r[i] for i in keep) for r in rows])
        v1_dims = ("provider", "model", "process", "api_key_id", "tenant", "container")
        conn.executemany(
            UPSERT_SQL["rollups"],
            [d for d in batch_deltas(rows)["rollups"] if d[0] == "total" or d[0] in v1_dims],
        )
    conn.close()


def _v3_service(e: UsageEvent) -> str | None:
    """The service version 3 gives an event stored before it (no command line kept)."""
    if e.unit and e.unit.endswith(".service") and not e.unit.startswith("user@"):
        return e.unit.removesuffix(".service")
    return e.container[:12] if e.container else e.process


async def test_migration_from_v1_drops_duplicates_and_fixes_rollups(tmp_path: Path) -> None:
    path = tmp_path / "db"
    unique = random_events(400, seed=24, start_ns=T0, span_ns=10 * HOUR_NS)
    # Replays of two slices (hours 0-1 and a few events later), with different
    # usage under the same ids: the first stored row must win.
    replayed = [
        make_event(e.started_ns, id=e.id, input_tokens=e.input_tokens + 1_000_000)
        for e in sorted(unique, key=lambda e: e.started_ns)[:60:2]
    ]
    replayed += [make_event(e.started_ns, id=e.id) for e in unique[300:310]]
    _v1_database(path, unique + replayed)
    assert raw_sums(path)[0] == 440
    s = await open_store(path, retention_days=0)
    try:
        assert s.event_count == 400
        assert s.stats()["schema_version"] == SCHEMA_VERSION == 6
        assert await s.summary() == brute_totals(unique)
        got = {e.id: e for e in await s.events(limit=1000)}
        assert got == {e.id: replace(e, service=_v3_service(e)) for e in unique}
        expected = raw_sums(path)
        assert expected[0] == 400
        assert rollups_by_dim(path) == {dim: expected for dim in ("total", *GROUP_DIMS)}
        # Version 6 built the minute rollups from the events that remained.
        assert rollups_by_dim(path, "rollups_minute") == rollups_by_dim(path)
        lo, hi = T0 + 17 * MIN_NS, T0 + 9 * HOUR_NS
        for group_by in GROUP_DIMS:
            series = await s.usage(group_by, "hour", lo, hi)
            assert (
                sum(s.requests for s in series)
                == brute_totals(e for e in unique if lo <= e.started_ns < hi).requests
            )
        # The upgraded database refuses duplicates from now on.
        await add(s, unique[:5])
        assert (s.writer.duplicates, s.event_count) == (5, 400)
        with sqlite3.connect(path) as conn:
            indexes = {r[1]: r[2] for r in conn.execute("PRAGMA index_list(events)")}
        assert indexes["events_id"] == 1  # unique
    finally:
        await s.close()


async def test_migration_from_v1_without_duplicates_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "db"
    events = random_events(200, seed=25, start_ns=T0, span_ns=5 * HOUR_NS)
    _v1_database(path, events)
    before = rollups_by_dim(path)
    s = await open_store(path, retention_days=0)
    try:
        assert s.event_count == 200
        assert await s.summary() == brute_totals(events)
        series = await s.usage("service", "hour", T0, T0 + 6 * HOUR_NS)
        by_service = {x.group: x.requests for x in series}
        expected: dict[str | None, int] = {}
        for e in events:
            expected[_v3_service(e)] = expected.get(_v3_service(e), 0) + 1
        assert by_service == expected
    finally:
        await s.close()
    after = rollups_by_dim(path)
    assert after["service"] == after["total"]
    assert {d: v for d, v in after.items() if d != "service"} == {
        d: v for d, v in before.items() if d != "service"
    }
