"""SQLite store: schema, migrations, batched writer, queries, rollups, retention.

The public API, for the daemon, the HTTP API and tools::

    store = await open_store(path, retention_days=90)
    store.writer.submit(event) -> bool      # non-blocking; drops are counted
    await store.writer.flush()              # wait for what was submitted
    store.writer.add_listener(listener)     # told after each commit
    await store.summary(since_ns, until_ns) -> Totals
    await store.usage(group_by, bucket, since_ns, until_ns) -> list[Series]
    await store.events(EventFilter(...), limit) -> list[UsageEvent]
    store.export(EventFilter(...)) -> async iterator of UsageEvent
    await store.start_lap(name) / await store.laps()
    store.stats() -> dict                   # for /api/status
    await store.close()                     # flushes, then closes
"""

from __future__ import annotations

from lumen_sniff.store.db import Lap, Store, open_store
from lumen_sniff.store.queries import BUCKETS_NS, MAX_NS, EventFilter, Series, Totals
from lumen_sniff.store.schema import GROUP_DIMS
from lumen_sniff.store.writer import CommitListener, Writer

__all__ = [
    "BUCKETS_NS",
    "GROUP_DIMS",
    "MAX_NS",
    "CommitListener",
    "EventFilter",
    "Lap",
    "Series",
    "Store",
    "Totals",
    "Writer",
    "open_store",
]
