"""The data of budgets: what a budget is, and what the evaluator says about it.

Money is ``Decimal`` in USD; times are UNIX nanoseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal

from lumen_sniff.model import UsageEvent

__all__ = [
    "SERVICE_COLUMN",
    "SERVICE_IS_PROCESS_NAME",
    "Action",
    "Alert",
    "Budget",
    "BudgetState",
    "BudgetStatus",
    "Enforcement",
    "Period",
    "ScopeKind",
    "State",
    "scope_value",
    "service_of",
]


class ScopeKind(enum.StrEnum):
    """Which events a budget counts."""

    GLOBAL = "global"
    PROVIDER = "provider"
    MODEL = "model"
    SERVICE = "service"
    UNIT = "unit"
    CONTAINER = "container"
    API_KEY_ID = "api_key_id"
    TENANT = "tenant"


PROCESS_SCOPES = frozenset({ScopeKind.SERVICE, ScopeKind.UNIT, ScopeKind.CONTAINER})
"""Scopes that name processes (enforced on the process or its cgroup)."""


# A service is the event's `service` (systemd service, else container, else a
# name from the command line). It is enforced on the processes that made its
# calls and, for new processes, by name: never on their cgroup, because a service
# named from a command line can share its cgroup (a login session, a CI job) with
# processes that must not be blocked. Unit and container scopes use cgroups.
def service_of(event: UsageEvent) -> str | None:
    """The event's service."""
    return event.service


SERVICE_COLUMN = "service"
"""The stored column (and rollup dimension) that holds a service."""
SERVICE_IS_PROCESS_NAME = True
"""A service is blocked by its processes and name (True), or by the cgroups of its
processes (False)."""


def scope_value(event: UsageEvent, kind: ScopeKind) -> str | None:
    """The value of ``kind`` on ``event`` (None when the event lacks it)."""
    if kind is ScopeKind.GLOBAL:
        return ""
    if kind is ScopeKind.SERVICE:
        return service_of(event)
    value: str | None = getattr(event, kind.value)
    return value


class Action(enum.StrEnum):
    """What happens when a budget reaches its limit."""

    ALERT = "alert"
    BLOCK = "block"
    PAUSE = "pause"


class State(enum.StrEnum):
    """A budget's state, worst last."""

    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"
    BLOCKED = "blocked"
    PAUSED = "paused"


@dataclass(frozen=True, kw_only=True, slots=True)
class Period:
    """A calendar period in a time zone, or a rolling window."""

    text: str
    """As written: ``day``, ``month``, ``10m``, ``24h``…"""
    calendar: str | None = None
    """``hour``, ``day``, ``week`` (Monday) or ``month``; None when rolling."""
    rolling_ns: int = 0
    """Width of a rolling window; 0 when calendar."""
    tz: str = "UTC"
    """IANA time zone of calendar periods."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """A limit on a scope's spend over a period."""

    name: str
    """Unique name."""
    scope: ScopeKind
    """What it counts."""
    match: str
    """Value of the scope it counts ('' for global)."""
    period: Period
    """When it resets."""
    limit_usd: Decimal
    """Dollar limit (estimated usage counts)."""
    limit_tokens: int | None = None
    """Optional token limit (input + output; unpriced calls count here)."""
    limit_requests: int | None = None
    """Optional request limit (unpriced calls count here)."""
    thresholds: tuple[int, ...] = (50, 80, 100)
    """Percentages that raise an alert once per period."""
    action: Action = Action.ALERT
    """What happens at 100%."""
    source: str = "config"
    """``config`` or ``api``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Alert:
    """An alert the evaluator decided to raise."""

    budget: str
    """Budget name."""
    kind: str
    """``threshold``, ``forecast``, ``anomaly``, ``block_applied``, ``block_lifted``…"""
    key: str
    """Dedup key: the same key is never delivered twice."""
    at_ns: int
    """When it was decided."""
    message: str
    """One readable line (no prompt text, no keys)."""
    threshold: int | None = None
    """The percentage crossed, for threshold alerts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Enforcement:
    """A block or pause to apply (``active``) or lift, and on whom."""

    budget: str
    """Budget (or ``manual:<scope>:<value>``) it belongs to."""
    action: Action
    """BLOCK or PAUSE."""
    active: bool
    """True to apply, False to lift."""
    reason: str
    """Why, for the log and the API."""
    at_ns: int
    """When it was decided."""
    pids: frozenset[int] = frozenset()
    """Processes that made the scope's calls this period."""
    comms: frozenset[str] = frozenset()
    """Process names (service scopes): new processes of that name are caught too."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetState:
    """What the evaluator keeps of one budget that must survive a restart."""

    reset_ns: int = 0
    """Events before this are not counted (``budgets reset``)."""
    fired: dict[str, int] = field(default_factory=dict)
    """Alert key → when it fired."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetStatus:
    """A budget's live state, as ``GET /api/budgets`` gives it."""

    budget: Budget
    """The budget."""
    state: State
    """ok, warning, exceeded, blocked or paused."""
    window_start_ns: int
    """Start of the counted window."""
    next_reset_ns: int | None
    """When the count next drops (calendar: period end; rolling: oldest call leaves)."""
    spent_usd: Decimal
    """Priced and estimated spend in the window."""
    tokens: int
    """Input + output tokens in the window."""
    requests: int
    """Calls in the window."""
    unpriced_requests: int
    """Calls with no price (counted by tokens and requests only)."""
    estimated_requests: int
    """Calls whose usage was estimated."""
    percent: float
    """Largest of the USD, token and request ratios, in percent."""
    forecast_usd: Decimal
    """Spend at period end at the current rate."""
    overshoot_usd: Decimal
    """Largest spend above the limit seen this period."""
    top_models: tuple[tuple[str, Decimal], ...]
    """Costliest models this period."""
    top_services: tuple[tuple[str, Decimal], ...]
    """Costliest services this period."""
    pids: frozenset[int]
    """Processes that made the scope's calls this period."""

    @property
    def remaining_usd(self) -> Decimal:
        """Limit minus spend, never below 0."""
        return max(self.budget.limit_usd - self.spent_usd, Decimal(0))
