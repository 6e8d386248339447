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
rows of each dimension; the minute rows into hour rows. Each step appends a
row's sums to its key's list and sums every list column by column at the end
(``map(sum, zip(...))``, C loops), rather than a tuple add per row and key.

Reading: :func:`cover` splits ``[since, until)`` into whole hours, whole
minutes and the partial minutes at its ends; the first two are read from the
rollups, the last from raw events. A day of minute buckets thus reads at most
1,440 rows per group value, however many events there are. Minute rollups
are kept fewer days than the events: :func:`floored` sends the minutes
below their floor to raw events.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable
from itertools import repeat
from typing import Any

from lumen_sniff.store.rows import EVENT_COLUMNS, HOUR_NS, MINUTE_NS
from lumen_sniff.store.schema import GROUP_DIMS, ROLLUP_SUMS

__all__ = [
    "ROLLUP_DIMS",
    "TABLES",
    "UPSERT_SQL",
    "batch_deltas",
    "cover",
    "floored",
    "units_for",
]

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
_I_NS = _COL["started_ns"]
_DIMS_OF = operator.itemgetter(*(_COL[d] for d in GROUP_DIMS))
# The summed event columns, in ROLLUP_SUMS order without requests (the group's
# size), unpriced (requests - priced) and cost, which comes last (None for
# unpriced calls, summed as 0).
_SUMMED = ("error", *ROLLUP_SUMS[2:7], "priced", "estimated", "cost_pusd")
_SUMS_OF = operator.itemgetter(*(_COL[c] for c in _SUMMED))
_Sums = tuple[int, ...]
"""(requests, errors, 5 token sums, priced, estimated, cost_pusd): a delta being summed."""


def _summed(acc: dict[tuple[str, int, str], list[_Sums]]) -> dict[tuple[str, int, str], _Sums]:
    """Each group summed column by column (one C call per column)."""
    return {
        key: group[0] if len(group) == 1 else tuple(map(sum, zip(*group, strict=True)))
        for key, group in acc.items()
    }


def _params(acc: dict[tuple[str, int, str], _Sums]) -> list[tuple[Any, ...]]:
    # Back to ROLLUP_SUMS order: cost after the tokens, unpriced = requests - priced.
    return [(*key, *s[:7], s[9], s[7], s[0] - s[7], s[8]) for key, s in acc.items()]


def _combo_sums(group: list[tuple[Any, ...]]) -> _Sums:
    """The sums of events that share a minute and every dimension's value."""
    if len(group) == 1:
        *sums, cost = group[0]
        return (1, *sums, cost or 0)
    *columns, costs = zip(*group, strict=True)
    return (len(group), *map(sum, columns), sum(filter(None, costs)))


def batch_deltas(rows: Iterable[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """Sum ``events`` rows (as :func:`~.rows.event_to_row` makes them) into upsert parameters.

    Returns:
        Per rollup table, the ``(dim, bucket_ns, value, *ROLLUP_SUMS)`` rows to add
        with :data:`UPSERT_SQL`.
    """
    # Rows are grouped into lists and each group summed column by column at
    # the end (map(sum, zip(...)): C loops), so the Python work per row is one
    # key and one append per step rather than a tuple add per row and key.
    combos: defaultdict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        at = row[_I_NS]
        combos[(at - at % MINUTE_NS, *_DIMS_OF(row))].append(_SUMS_OF(row))
    minutes: defaultdict[tuple[str, int, str], list[_Sums]] = defaultdict(list)
    for (minute, *values), group in combos.items():
        sums = _combo_sums(group)
        minutes["total", minute, ""].append(sums)
        for mkey in zip(GROUP_DIMS, repeat(minute), [v or "" for v in values], strict=False):
            minutes[mkey].append(sums)
    minute_sums = _summed(minutes)
    hours: defaultdict[tuple[str, int, str], list[_Sums]] = defaultdict(list)
    for (dim, minute, value), sums in minute_sums.items():
        hours[dim, minute - minute % HOUR_NS, value].append(sums)
    return {TABLES[MINUTE_NS]: _params(minute_sums), TABLES[HOUR_NS]: _params(_summed(hours))}


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


def floored(
    spans: list[tuple[int | None, int, int]], unit: int, floor_ns: int
) -> list[tuple[int | None, int, int]]:
    """``spans`` with the part of each ``unit`` span before ``floor_ns`` read raw (None).

    The minute rollups are kept for fewer days than the events: below their
    floor, the minutes :func:`cover` asked of them come from raw events.
    """
    out: list[tuple[int | None, int, int]] = []
    for span in spans:
        u, lo, hi = span
        if u != unit or lo >= floor_ns:
            out.append(span)
            continue
        out.append((None, lo, min(hi, floor_ns)))
        if hi > floor_ns:
            out.append((u, floor_ns, hi))
    return out
