"""Running sums over a budget's window: calendar (reset at the boundary) or rolling.

Strategy: a :class:`Tally` is a mutable sum of contributions (money, tokens,
requests, per-model and per-service money, pids). A calendar window keeps one
Tally and clears it when the period changes. A rolling window keeps a deque of
per-bucket Tallies (a bucket is 1/240 of the width, at least 100 ms, so a month
of traffic costs at most 240 buckets) plus their total; buckets that leave the
window are subtracted from the total. So the window edge is exact to one
bucket, and feeding or expiring costs O(1) per event or bucket.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from lumen_sniff.budgets.model import Period
from lumen_sniff.budgets.period import window

__all__ = ["Contribution", "Tally", "Window"]

_MIN_BUCKET_NS = 100_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Contribution:
    """What one event adds to a budget."""

    ts_ns: int
    """Event start."""
    cost_usd: Decimal | None
    """Cost; None when unpriced."""
    tokens: int
    """Input + output tokens."""
    estimated: bool
    """Usage was estimated."""
    model: str
    """Model ('' when unknown)."""
    service: str
    """Service ('' when unknown)."""
    pid: int | None
    """Calling process."""


class Tally:
    """Mutable sums of contributions."""

    __slots__ = (
        "by_model",
        "by_service",
        "cost_usd",
        "estimated",
        "pids",
        "requests",
        "tokens",
        "unpriced",
    )

    def __init__(self) -> None:
        self.cost_usd = Decimal(0)
        self.tokens = 0
        self.requests = 0
        self.unpriced = 0
        self.estimated = 0
        self.by_model: dict[str, Decimal] = {}
        self.by_service: dict[str, Decimal] = {}
        self.pids: dict[int, int] = {}

    def add(self, c: Contribution) -> None:
        """Count one contribution."""
        cost = c.cost_usd if c.cost_usd is not None else Decimal(0)
        self.cost_usd += cost
        self.tokens += c.tokens
        self.requests += 1
        self.unpriced += c.cost_usd is None
        self.estimated += c.estimated
        self.by_model[c.model] = self.by_model.get(c.model, Decimal(0)) + cost
        self.by_service[c.service] = self.by_service.get(c.service, Decimal(0)) + cost
        if c.pid is not None:
            self.pids[c.pid] = self.pids.get(c.pid, 0) + 1

    def subtract(self, other: Tally) -> None:
        """Remove ``other`` (a bucket leaving a rolling window)."""
        self.cost_usd -= other.cost_usd
        self.tokens -= other.tokens
        self.requests -= other.requests
        self.unpriced -= other.unpriced
        self.estimated -= other.estimated
        for mine, theirs in ((self.by_model, other.by_model), (self.by_service, other.by_service)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, Decimal(0)) - value
        for pid, count in other.pids.items():
            if self.pids.get(pid, 0) - count > 0:
                self.pids[pid] -= count
            else:
                self.pids.pop(pid, None)
        if self.requests == 0:
            self.by_model.clear()
            self.by_service.clear()
            self.pids.clear()


class Window:
    """A budget's current window and its sums."""

    def __init__(self, period: Period, now_ns: int) -> None:
        self.period = period
        self.total = Tally()
        self._buckets: deque[tuple[int, Tally]] = deque()
        self._bucket_ns = max(period.rolling_ns // 240, _MIN_BUCKET_NS)
        self.start_ns, self.end_ns = window(period, now_ns)

    @property
    def rolling(self) -> bool:
        """True for a rolling window."""
        return self.period.calendar is None

    def advance(self, now_ns: int) -> bool:
        """Move the window to ``now_ns``; True when counted calls left it (or it reset)."""
        if not self.rolling:
            if now_ns < self.end_ns:
                return False
            had = self.total.requests > 0
            self.start_ns, self.end_ns = window(self.period, now_ns)
            self.total = Tally()
            return had
        self.start_ns, self.end_ns = window(self.period, now_ns)
        dropped = False
        # A bucket leaves once its last instant is out: bucket + width <= start.
        while self._buckets and self._buckets[0][0] + self._bucket_ns <= self.start_ns:
            self.total.subtract(self._buckets.popleft()[1])
            dropped = True
        return dropped

    def add(self, c: Contribution) -> bool:
        """Count ``c`` if it falls in the window; True when counted."""
        if c.ts_ns < self.start_ns or (not self.rolling and c.ts_ns >= self.end_ns):
            return False
        self.total.add(c)
        if self.rolling:
            bucket = c.ts_ns - c.ts_ns % self._bucket_ns
            if self._buckets and self._buckets[-1][0] >= bucket:
                self._buckets[-1][1].add(c)  # late events join the newest bucket
            else:
                tally = Tally()
                tally.add(c)
                self._buckets.append((bucket, tally))
        return True

    def clear(self) -> None:
        """Forget every counted call (a manual reset)."""
        self.total = Tally()
        self._buckets.clear()

    def next_reset_ns(self) -> int | None:
        """When the count next drops: period end, or when the oldest bucket leaves."""
        if not self.rolling:
            return self.end_ns
        if not self._buckets:
            return None
        return self._buckets[0][0] + self._bucket_ns + self.period.rolling_ns
