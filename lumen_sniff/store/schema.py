"""The database schema as an ordered list of migrations.

``schema_version`` holds one row: the number of migrations applied. Opening a
database applies the missing ones, each in its own transaction, so a crash
mid-upgrade leaves the previous version intact. A database from a newer
lumen-sniff (more migrations than this one knows) is refused, not guessed at.

Tables:

* ``events``: one row per UsageEvent. Money is kept twice: ``cost_usd`` is the
  exact Decimal text (what the event said), ``cost_pusd`` the same in integer
  pico-dollars so SQL sums are exact (exact for any price with at most six
  decimals per million tokens; sums stay exact up to about $9.2 million per
  query). ``error``, ``priced`` and ``estimated`` are 0/1 flags computed once at
  insert so every query counts them the same way.
* ``rollups`` and ``rollups_minute`` (version 6): hourly and per-minute sums
  per dimension, kept in the same transaction as the inserts (see
  :mod:`lumen_sniff.store.rollup`). ``dim`` is ``total`` (one row per bucket,
  ``value`` = '') or one of
  :data:`GROUP_DIMS`, whose value (NULL stored as '') is the group. One table
  per dimension, rather than one row per combination of all six, keeps the
  row count bounded by the distinct values of each dimension.
* ``laps``: named time ranges started from the CLI.
* ``budgets``, ``budget_resets``, ``manual_blocks``, ``enforcement_log``,
  ``alerts``, ``alert_deliveries``, ``llm_endpoints`` (version 4): see
  :mod:`lumen_sniff.store.budgetdb`.

Version 2 makes ``events.id`` unique (ids are deterministic, so a replayed
capture or a re-submitted batch must not count twice). Upgrading a database
that already holds duplicates keeps the first row stored per id and rebuilds
the rollups of the hours that lost rows from the events that remain.

Version 5 adds ``events.service`` (who spent it) and its rollups.

Version 6 adds ``rollups_minute``: the same sums per minute (see
:mod:`lumen_sniff.store.rollup`), backfilled from the stored events.
"""

from __future__ import annotations

__all__ = ["GROUP_DIMS", "MIGRATIONS", "ROLLUP_SUMS", "SCHEMA_VERSION"]

GROUP_DIMS: tuple[str, ...] = (
    "provider",
    "model",
    "process",
    "api_key_id",
    "tenant",
    "container",
    "service",
)
"""Event columns that /api/usage can group by (each has its own rollups)."""

ROLLUP_SUMS: tuple[str, ...] = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_pusd",
    "priced",
    "unpriced",
    "estimated",
)
"""The summed columns of ``rollups``, in order."""

_V1 = """
CREATE TABLE events (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL,
    started_ns         INTEGER NOT NULL,
    started_at         TEXT NOT NULL,
    provider           TEXT NOT NULL,
    api                TEXT NOT NULL,
    model              TEXT,
    stream             INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_usd           TEXT,
    cost_pusd          INTEGER,
    usage_source       TEXT NOT NULL,
    pid                INTEGER,
    process            TEXT,
    duration_ms        REAL,
    ttft_ms            REAL,
    api_key_id         TEXT,
    tenant             TEXT,
    host               TEXT NOT NULL,
    path               TEXT NOT NULL,
    complete           INTEGER NOT NULL,
    error_type         TEXT,
    price_source       TEXT,
    provider_cost_usd  TEXT,
    exe                TEXT,
    container          TEXT,
    unit               TEXT,
    extra              TEXT,
    error              INTEGER NOT NULL,
    priced             INTEGER NOT NULL,
    estimated          INTEGER NOT NULL
);
CREATE INDEX events_time ON events (started_ns);
CREATE INDEX events_model ON events (model, started_ns);
CREATE INDEX events_provider ON events (provider, started_ns);
CREATE INDEX events_process ON events (process, started_ns);
CREATE INDEX events_key ON events (api_key_id, started_ns);
CREATE INDEX events_tenant ON events (tenant, started_ns);

CREATE TABLE rollups (
    dim                TEXT NOT NULL,
    bucket_ns          INTEGER NOT NULL,
    value              TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    cost_pusd          INTEGER NOT NULL,
    priced             INTEGER NOT NULL,
    unpriced           INTEGER NOT NULL,
    estimated          INTEGER NOT NULL,
    PRIMARY KEY (dim, bucket_ns, value)
) WITHOUT ROWID;

CREATE TABLE laps (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    ended_ns   INTEGER
);
"""

_HOUR_NS = 3_600_000_000_000

# Spelled out rather than taken from GROUP_DIMS/ROLLUP_SUMS: a migration must
# keep producing the version-2 schema whatever later versions add.
_V2_DIMS = ("provider", "model", "process", "api_key_id", "tenant", "container")
_V2_SUMS = (
    "COUNT(*), SUM(e.error), SUM(e.input_tokens), SUM(e.output_tokens), "
    "SUM(e.cache_read_tokens), SUM(e.cache_write_tokens), SUM(e.reasoning_tokens), "
    "COALESCE(SUM(e.cost_pusd), 0), SUM(e.priced), COUNT(*) - SUM(e.priced), SUM(e.estimated)"
)
_V2_ROLLUP_COLS = (
    "dim, bucket_ns, value, requests, errors, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_pusd, priced, "
    "unpriced, estimated"
)


def _v2_rebuild(dim: str) -> str:
    value = "''" if dim == "total" else f"COALESCE(e.{dim}, '')"
    return (
        f"INSERT INTO rollups ({_V2_ROLLUP_COLS}) "
        f"SELECT '{dim}', h.bucket_ns, {value}, {_V2_SUMS} "
        "FROM _v2_hours h JOIN events e "
        f"ON e.started_ns >= h.bucket_ns AND e.started_ns < h.bucket_ns + {_HOUR_NS} "
        "GROUP BY h.bucket_ns, 3;\n"
    )


_V2 = (
    # Every row but the first stored (lowest seq) of each id.
    "CREATE TEMP TABLE _v2_dups AS SELECT seq, started_ns FROM events "
    "WHERE seq NOT IN (SELECT MIN(seq) FROM events GROUP BY id);\n"
    f"CREATE TEMP TABLE _v2_hours AS SELECT DISTINCT started_ns - started_ns % {_HOUR_NS} "
    "AS bucket_ns FROM _v2_dups;\n"
    "DELETE FROM events WHERE seq IN (SELECT seq FROM _v2_dups);\n"
    "DELETE FROM rollups WHERE bucket_ns IN (SELECT bucket_ns FROM _v2_hours);\n"
    + "".join(_v2_rebuild(dim) for dim in ("total", *_V2_DIMS))
    + "CREATE UNIQUE INDEX events_id ON events (id);\n"
    "DROP TABLE _v2_dups;\n"
    "DROP TABLE _v2_hours;\n"
)

_V3 = "ALTER TABLE events ADD COLUMN usage_flags TEXT;\n"
"""Version 3: ``events.usage_flags``, the comma-separated self-contradictions of
the reported usage (NULL when none); older rows have none recorded."""

# Version 4: budgets made through the API, manual resets and kill switches, the
# enforcement log, the alert outbox (one row per alert, one per delivery), and
# the LLM endpoints learned from traffic (a restarted daemon can block at once).
_V4 = """
CREATE TABLE budgets (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE budget_resets (
    name     TEXT PRIMARY KEY,
    reset_ns INTEGER NOT NULL
);
CREATE TABLE manual_blocks (
    scope      TEXT NOT NULL,
    match      TEXT NOT NULL,
    action     TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (scope, match, action)
);
CREATE TABLE enforcement_log (
    id      INTEGER PRIMARY KEY,
    at_ns   INTEGER NOT NULL,
    budget  TEXT NOT NULL,
    action  TEXT NOT NULL,
    active  INTEGER NOT NULL,
    reason  TEXT NOT NULL,
    targets TEXT NOT NULL
);
CREATE INDEX enforcement_log_budget ON enforcement_log (budget, id);
CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    budget     TEXT NOT NULL,
    slot       TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    payload    TEXT NOT NULL
);
CREATE INDEX alerts_budget ON alerts (budget, slot, created_ns);
CREATE TABLE alert_deliveries (
    alert_id   INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    dest       TEXT NOT NULL,
    state      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    next_ns    INTEGER NOT NULL,
    last_error TEXT,
    sent_ns    INTEGER,
    PRIMARY KEY (alert_id, dest)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_ns);
CREATE TABLE llm_endpoints (
    addr         TEXT NOT NULL,
    port         INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (addr, port)
);
"""

# Version 5: the event's service. Older rows get the best name their stored
# facts allow (the command line was not kept): the systemd service, else the
# container id's first 12 digits, else the process; then their hourly
# ``service`` rollups are built.
_V5 = (
    "ALTER TABLE events ADD COLUMN service TEXT;\n"
    "UPDATE events SET service = CASE "
    "WHEN unit LIKE '%.service' AND unit NOT LIKE 'user@%' THEN substr(unit, 1, length(unit) - 8) "
    "WHEN container IS NOT NULL THEN substr(container, 1, 12) "
    "ELSE process END;\n"
    "CREATE INDEX events_service ON events (service, started_ns);\n"
    f"INSERT INTO rollups ({_V2_ROLLUP_COLS}) "
    f"SELECT 'service', e.started_ns - e.started_ns % {_HOUR_NS} AS b, COALESCE(e.service, ''), "
    f"{_V2_SUMS} FROM events e GROUP BY b, 3;\n"
)

# Version 6: minute rollups, the same shape as the hourly ones (see
# lumen_sniff.store.rollup), built from every stored event. A dimension's
# value is the same CASE as the writer's, spelled out here so this migration
# keeps producing version 6 whatever later versions add.
_V6_DIMS = (*_V2_DIMS, "service")
_V6_MINUTE_NS = 60_000_000_000
_V6 = (
    "CREATE TABLE rollups_minute (\n"
    "    dim TEXT NOT NULL, bucket_ns INTEGER NOT NULL, value TEXT NOT NULL,\n"
    + "".join(f"    {c} INTEGER NOT NULL,\n" for c in _V2_ROLLUP_COLS.split(", ")[3:])
    + "    PRIMARY KEY (dim, bucket_ns, value)\n) WITHOUT ROWID;\n"
    f"INSERT INTO rollups_minute ({_V2_ROLLUP_COLS}) "
    f"SELECT d.dim, e.started_ns - e.started_ns % {_V6_MINUTE_NS}, CASE d.dim "
    + " ".join(f"WHEN '{dim}' THEN COALESCE(e.{dim}, '')" for dim in _V6_DIMS)
    + f" ELSE '' END, {_V2_SUMS} FROM events AS e CROSS JOIN ("
    + " UNION ALL ".join(f"SELECT '{dim}' AS dim" for dim in ("total", *_V6_DIMS))
    + ") AS d GROUP BY 1, 2, 3;\n"
)

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
"""SQL scripts; migration ``i`` takes the schema from version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version this code writes."""
