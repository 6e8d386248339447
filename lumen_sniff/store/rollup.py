"""The hour and minute rollups: what a committed batch adds to them, and which rows answer a range.

Two tables of the same shape, one row per (dimension, bucket, value) with the
sums of :data:`~lumen_sniff.store.schema.ROLLUP_SUMS`: ``rollups`` (hours) and
``rollups_minute`` (minutes, schema version 6). ``dim`` is ``total`` (value
'') or one of :data:`~lumen_sniff.store.schema.GROUP_DIMS` (NULL kept as '').

Writing: :func:`batch_deltas` sums a batch's rows in memory and the writer
upserts the sums *in the same transaction* as the events, so rollups and
events never disagree, not even after ``kill -9``. Summing runs in three
steps, each over fewer keys than the one before: events into one entry per
(minute, combination of every dimension), which real traffic (a few models,
processes and keys at a time) collapses many-fold; those into the per-minute
rows of each dimension; the minute rows into hour rows. Sums are added with
``map`` (one C call per key) rather than element by element.

Reading: :func:`cover` splits ``[since, until)`` into whole hours, whole
minutes and the partial minutes at its ends; the first two are read from the
rollups, the last from raw events. A day of minute buckets thus reads at most
1,440 rows per group value, however many events there are.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

from lumen_sniff.store.rows import EVENT_COLUMNS, HOUR_NS, MINUTE_NS
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = ["ROLLUP_DIMS", "TABLES", "UPSERT_SQL", "batch_deltas", "cover", "units_for"]

TABLES: dict[int, str] = {HOUR_NS: "rollups", MINUTE_NS: "rollups_minute"}
"""Rollup table by bucket width, coarsest first."""

ROLLUP_DIMS: tuple[str, ...] = ("total", *GROUP_DIMS)
"""The ``dim`` values of rollup rows."""


def _upsert_sql(table: str) -> str:
    return (
        f"INSERT INTO {table} (dim, bucket_ns, value, {', '.join(ROLLUP_SUMS)}) "
        f"VALUES (?, ?, ?, {', '.join('?' * len(ROLLUP_SUMS))}) "
        "ON CONFLICT (dim, bucket_ns, value) DO UPDATE SET "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS)
    )


UPSERT_SQL: dict[str, str] = {table: _upsert_sql(table) for table in TABLES.values()}
"""Per table: add one ``(dim, bucket_ns, value, *sums)`` row of :func:`batch_deltas`."""

_COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_I_NS, _I_COST = _COL["started_ns"], _COL["cost_pusd"]
_DIMS_OF = operator.itemgetter(*(_COL[d] for d in GROUP_DIMS))
# The summed event columns, in ROLLUP_SUMS order without requests (counted as
# 1 each), cost (None for unpriced, added as 0) and unpriced (requests - priced).
_SUMMED = ("error", *ROLLUP_SUMS[2:7], "priced", "estimated")
_SUMS_OF = operator.itemgetter(*(_COL[c] for c in _SUMMED))
_ADD = operator.add
_Sums = tuple[int, ...]
"""(requests, errors, 5 token sums, priced, estimated, cost_pusd): a delta being summed."""


def _params(acc: dict[tuple[str, int, str], _Sums]) -> list[tuple[Any, ...]]:
    # Back to ROLLUP_SUMS order: cost after the tokens, unpriced = requests - priced.
    return [(*key, *s[:7], s[9], s[7], s[0] - s[7], s[8]) for key, s in acc.items()]


def batch_deltas(rows: Iterable[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """Sum ``events`` rows (as :func:`~.rows.event_to_row` makes them) into upsert parameters.

    Returns:
        Per rollup table, the ``(dim, bucket_ns, value, *ROLLUP_SUMS)`` rows to add
        with :data:`UPSERT_SQL`.
    """
    # The adds are written out in each loop: a helper call per add would cost
    # more than the add.
    combos: dict[tuple[Any, ...], _Sums] = {}
    for row in rows:
        at = row[_I_NS]
        cost = row[_I_COST]
        key = (at - at % MINUTE_NS, *_DIMS_OF(row))
        sums = (1, *_SUMS_OF(row), 0 if cost is None else cost)
        old = combos.get(key)
        combos[key] = sums if old is None else tuple(map(_ADD, old, sums))
    minutes: dict[tuple[str, int, str], _Sums] = {}
    for (minute, *values), sums in combos.items():
        for mkey in (
            ("total", minute, ""),
            *((dim, minute, value or "") for dim, value in zip(GROUP_DIMS, values, strict=True)),
        ):
            old = minutes.get(mkey)
            minutes[mkey] = sums if old is None else tuple(map(_ADD, old, sums))
    hours: dict[tuple[str, int, str], _Sums] = {}
    for (dim, minute, value), sums in minutes.items():
        hkey = (dim, minute - minute % HOUR_NS, value)
        old = hours.get(hkey)
        hours[hkey] = sums if old is None else tuple(map(_ADD, old, sums))
    return {TABLES[MINUTE_NS]: _params(minutes), TABLES[HOUR_NS]: _params(hours)}


def units_for(width_ns: int | None) -> tuple[int, ...]:
    """The rollup widths whose buckets nest in ``width_ns`` buckets (None: one bucket),
    coarsest first."""
    return tuple(w for w in TABLES if width_ns is None or width_ns % w == 0)


def cover(lo: int, hi: int, units: tuple[int, ...]) -> list[tuple[int | None, int, int]]:
    """Cover ``[lo, hi)`` with ``(unit, start, end)`` spans: whole buckets of the coarsest
    unit that fits, finer ones around them, and raw (unit None) partial buckets at the ends."""
    if lo >= hi:
        return []
    if not units:
        return [(None, lo, hi)]
    unit, finer = units[0], units[1:]
    first = -(-lo // unit) * unit
    last = hi - hi % unit
    if first >= last:
        return cover(lo, hi, finer)
    return [*cover(lo, first, finer), (unit, first, last), *cover(last, hi, finer)]
