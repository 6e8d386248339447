"""The budget evaluator: events in, alerts and enforcement decisions out. Pure.

Strategy: one :class:`_Track` per budget holds its :class:`Window`, the time of
its last manual reset, the alerts already fired (kind → time) and whether its
block or pause is applied. Every input (an event, or a clock tick) ends with
``_check``, which compares the budget's status with what was already said and
returns only what changed:

* a threshold alert when the percentage reaches each threshold, once per
  window (a calendar period; for a rolling window, once per window width);
* a forecast alert once per window when spend at the current rate would reach
  the limit by the period's end;
* an anomaly alert once per window when the spend rate is ``anomaly_factor``
  times the trailing baseline the caller supplied (none without history);
* an :class:`Enforcement` when a ``block``/``pause`` budget crosses 100%
  (apply) or falls back under it (lift: period reset, rolling window moving
  on, manual reset, limit raised, budget removed), with a matching alert.

A pause is a kill switch: it lifts only on ``resume``, a manual reset or the
budget's removal, never by itself. ``resume`` holds it off until the window
resets (calendar) or the spend falls back under the limit (rolling).

The clock is injected: every method takes ``now_ns``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from lumen_sniff.budgets.model import (
    SERVICE_IS_PROCESS_NAME,
    Action,
    Alert,
    Budget,
    BudgetState,
    BudgetStatus,
    Enforcement,
    ScopeKind,
    State,
    scope_value,
    service_of,
)
from lumen_sniff.budgets.window import Contribution, Window
from lumen_sniff.model import UsageEvent, UsageSource

__all__ = ["Decision", "Evaluator"]

Decision = Alert | Enforcement

_HOUR_NS = 3_600 * 10**9
_TOP = 5


@dataclass(kw_only=True, slots=True)
class _Track:
    budget: Budget
    window: Window
    reset_ns: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    enforced: bool = False
    held_off: bool = False
    held_window: int = 0
    overshoot: Decimal = Decimal(0)
    baseline_usd_per_hour: Decimal | None = None


class Evaluator:
    """Live state of every budget, fed with UsageEvents and clock ticks.

    Args:
        now_ns: The clock at creation.
        anomaly_factor: Spend rate over baseline that counts as an anomaly.
        forecast_min_fraction: Share of a calendar period that must have passed
            before a forecast alert may fire (early rates are noise).
    """

    def __init__(
        self, *, now_ns: int, anomaly_factor: float = 3.0, forecast_min_fraction: float = 0.1
    ) -> None:
        self._tracks: dict[str, _Track] = {}
        self._created_ns = now_ns
        self._anomaly = Decimal(str(anomaly_factor))
        self._forecast_min = forecast_min_fraction

    # ------------------------------------------------------------ budgets

    @property
    def budgets(self) -> list[Budget]:
        """Every budget, in insertion order."""
        return [t.budget for t in self._tracks.values()]

    def add(self, budget: Budget, now_ns: int, state: BudgetState | None = None) -> None:
        """Start tracking ``budget`` (replacing one of that name). Feed its history next."""
        st = state or BudgetState()
        old = self._tracks.get(budget.name)
        track = _Track(
            budget=budget,
            window=Window(budget.period, now_ns),
            reset_ns=st.reset_ns,
            fired=dict(st.fired),
        )
        if old is not None:
            track.enforced, track.held_off = old.enforced, old.held_off
        self._tracks[budget.name] = track

    def update(self, budget: Budget, now_ns: int) -> list[Decision]:
        """Change a budget's limits/thresholds/action keeping its window (same scope, period)."""
        track = self._tracks[budget.name]
        track.budget = budget
        return self._check(track, now_ns, lift_reason="budget changed (limit raised?)")

    def remove(self, name: str, now_ns: int) -> list[Decision]:
        """Stop tracking; lifts its block or pause."""
        track = self._tracks.pop(name, None)
        if track is None or not track.enforced:
            return []
        return self._lift(track, now_ns, "budget removed", _status(track, now_ns))

    def reset(self, name: str, now_ns: int) -> list[Decision]:
        """Count from zero from now on; lifts a block or pause."""
        track = self._tracks[name]
        track.reset_ns = now_ns
        track.window.clear()
        track.overshoot = Decimal(0)
        track.held_off = False
        return self._check(track, now_ns, lift_reason="budget reset")

    def resume(self, name: str, now_ns: int) -> list[Decision]:
        """Lift a pause (``lumen-sniff resume``) until the window resets."""
        track = self._tracks[name]
        track.held_off, track.held_window = True, track.window.start_ns
        if not track.enforced:
            return []
        return self._lift(track, now_ns, "resumed by an operator", _status(track, now_ns))

    def set_baseline(self, name: str, usd_per_hour: Decimal | None) -> None:
        """The trailing spend rate anomaly alerts compare with (None: no history)."""
        if name in self._tracks:
            self._tracks[name].baseline_usd_per_hour = usd_per_hour

    # ------------------------------------------------------------- inputs

    def feed(self, events: Iterable[UsageEvent], now_ns: int) -> list[Decision]:
        """Count events (each in the budgets whose scope it matches)."""
        touched: dict[str, _Track] = {}
        for track in self._tracks.values():
            track.window.advance(now_ns)
        for event in events:
            for track in self._tracks.values():
                b = track.budget
                if event.started_ns < track.reset_ns or scope_value(event, b.scope) != (
                    b.match if b.scope is not ScopeKind.GLOBAL else ""
                ):
                    continue
                if track.window.add(_contribution(event)):
                    touched[b.name] = track
        out: list[Decision] = []
        for track in touched.values():
            out += self._check(track, now_ns)
        return out

    def tick(self, now_ns: int) -> list[Decision]:
        """Advance the clock: period resets, rolling windows moving on."""
        out: list[Decision] = []
        for track in list(self._tracks.values()):
            track.window.advance(now_ns)
            why = "rolling window moved on" if track.window.rolling else "period reset"
            out += self._check(track, now_ns, lift_reason=why)
        return out

    # ------------------------------------------------------------ outputs

    def statuses(self, now_ns: int) -> list[BudgetStatus]:
        """Every budget's status."""
        out = []
        for track in self._tracks.values():
            track.window.advance(now_ns)
            out.append(_status(track, now_ns))
        return out

    def enforced(self) -> dict[str, Action]:
        """Budgets whose block or pause is applied."""
        return {n: t.budget.action for n, t in self._tracks.items() if t.enforced}

    # ------------------------------------------------------------ checking

    def _check(self, track: _Track, now_ns: int, lift_reason: str = "") -> list[Decision]:
        st = _status(track, now_ns)
        b = track.budget
        if st.spent_usd > b.limit_usd:
            track.overshoot = max(track.overshoot, st.spent_usd - b.limit_usd)
        elif not track.window.rolling and track.window.total.requests == 0:
            track.overshoot = Decimal(0)
        out: list[Decision] = []
        for t in sorted(b.thresholds):
            if st.percent >= t:
                out += self._fire(track, now_ns, f"threshold:{t}", st, threshold=t)
        if st.percent < 100 and self._forecast_due(track, st, now_ns):
            out += self._fire(track, now_ns, "forecast", st)
        base = track.baseline_usd_per_hour
        if base is not None and base > 0 and _rate_per_hour(track, now_ns) > base * self._anomaly:
            out += self._fire(track, now_ns, "anomaly", st)
        if track.held_off and (
            (not track.window.rolling and track.window.start_ns != track.held_window)
            or (track.window.rolling and st.percent < 100)
        ):
            track.held_off = False
        want = b.action is not Action.ALERT and st.percent >= 100 and not track.held_off
        if b.action is Action.PAUSE and track.enforced and not track.held_off:
            want = True  # a pause is a kill switch: only resume/reset/removal lift it
        if want and not track.enforced:
            track.enforced = True
            out += self._enforce(track, now_ns, True, f"{_spent(st)} ({b.period.text})", st)
        elif not want and track.enforced:
            out += self._lift(track, now_ns, lift_reason or "spend back under the limit", st)
        return out

    def _forecast_due(self, track: _Track, st: BudgetStatus, now_ns: int) -> bool:
        w = track.window
        if w.rolling or st.requests < 3:
            return False
        elapsed = now_ns - w.start_ns
        return elapsed >= (w.end_ns - w.start_ns) * self._forecast_min and (
            st.forecast_usd >= track.budget.limit_usd
        )

    def _fire(
        self, track: _Track, now_ns: int, kind: str, st: BudgetStatus, threshold: int | None = None
    ) -> list[Decision]:
        when = track.fired.get(kind)
        # Fired in this window already (a calendar period, or the last window width)?
        if when is not None and when >= max(track.window.start_ns, track.reset_ns):
            return []
        track.fired[kind] = now_ns
        b = track.budget
        label = {
            "forecast": "is forecast to exceed its limit",
            "anomaly": "is spending far above its usual rate",
        }.get(kind, f"reached {threshold}%")
        return [
            Alert(
                budget=b.name,
                kind=kind.split(":")[0],
                key=f"{b.name}:{kind}:{now_ns}",
                at_ns=now_ns,
                threshold=threshold,
                message=f"budget {b.name} ({_scope(b)}) {label}: {_spent(st)}",
            )
        ]

    def _enforce(
        self, track: _Track, now_ns: int, active: bool, reason: str, st: BudgetStatus
    ) -> list[Decision]:
        b = track.budget
        verb = b.action.value + (" applied" if active else " lifted")
        kind = f"{b.action.value}_{'applied' if active else 'lifted'}"
        out: list[Decision] = [
            Enforcement(
                budget=b.name,
                action=b.action,
                active=active,
                reason=reason,
                at_ns=now_ns,
                pids=st.pids,
                comms=frozenset({b.match}) if _by_name(b) else frozenset(),
            )
        ]
        applied = track.fired.get(f"{b.action.value}_applied", -1)
        lifted = track.fired.get(f"{b.action.value}_lifted", -1)
        if active and applied > lifted:
            # An "applied" alert stands with no lift after it: this is the same
            # block restored after a restart, not news.
            return out
        track.fired[kind] = now_ns
        out.append(
            Alert(
                budget=b.name,
                kind=kind,
                key=f"{b.name}:{kind}:{now_ns}",
                at_ns=now_ns,
                message=f"budget {b.name} ({_scope(b)}): {verb}: {reason}",
            )
        )
        return out

    def _lift(self, track: _Track, now_ns: int, reason: str, st: BudgetStatus) -> list[Decision]:
        track.enforced = False
        return self._enforce(track, now_ns, False, reason, st)


def _by_name(b: Budget) -> bool:
    return b.scope is ScopeKind.SERVICE and SERVICE_IS_PROCESS_NAME


def _contribution(e: UsageEvent) -> Contribution:
    return Contribution(
        ts_ns=e.started_ns,
        cost_usd=e.cost_usd,
        tokens=e.input_tokens + e.output_tokens,
        estimated=e.usage_source is UsageSource.ESTIMATED,
        model=e.model or "",
        service=service_of(e) or "",
        pid=e.pid,
    )


def _status(track: _Track, now_ns: int) -> BudgetStatus:
    b, w = track.budget, track.window
    tot = w.total
    ratios = [tot.cost_usd / b.limit_usd if b.limit_usd > 0 else Decimal(tot.requests > 0)]
    if b.limit_tokens:
        ratios.append(Decimal(tot.tokens) / b.limit_tokens)
    if b.limit_requests:
        ratios.append(Decimal(tot.requests) / b.limit_requests)
    percent = float(max(ratios) * 100)
    if track.enforced:
        state = State.PAUSED if b.action is Action.PAUSE else State.BLOCKED
    elif percent >= 100:
        state = State.EXCEEDED
    elif b.thresholds and percent >= min(b.thresholds):
        state = State.WARNING
    else:
        state = State.OK
    return BudgetStatus(
        budget=b,
        state=state,
        window_start_ns=w.start_ns,
        next_reset_ns=w.next_reset_ns(),
        spent_usd=tot.cost_usd,
        tokens=tot.tokens,
        requests=tot.requests,
        unpriced_requests=tot.unpriced,
        estimated_requests=tot.estimated,
        percent=percent,
        forecast_usd=_forecast(track, now_ns),
        overshoot_usd=track.overshoot,
        top_models=_top(tot.by_model),
        top_services=_top(tot.by_service),
        pids=frozenset(tot.pids),
    )


def _forecast(track: _Track, now_ns: int) -> Decimal:
    w = track.window
    spent = w.total.cost_usd
    if w.rolling:
        return spent  # a rolling window at a steady rate holds what it holds now
    start = max(w.start_ns, track.reset_ns)
    elapsed = max(now_ns - start, 1)
    return spent + spent * (w.end_ns - max(now_ns, start)) / elapsed


def _rate_per_hour(track: _Track, now_ns: int) -> Decimal:
    w = track.window
    elapsed = min(now_ns - max(w.start_ns, track.reset_ns), w.end_ns - w.start_ns)
    if elapsed < _HOUR_NS // 12:  # under 5 minutes: too little to call a rate
        return Decimal(0)
    return w.total.cost_usd * _HOUR_NS / elapsed


def _top(values: Mapping[str, Decimal]) -> tuple[tuple[str, Decimal], ...]:
    ranked = sorted(((k, v) for k, v in values.items() if v), key=lambda kv: (-kv[1], kv[0]))
    return tuple(ranked[:_TOP])


def _scope(b: Budget) -> str:
    return "global" if b.scope is ScopeKind.GLOBAL else f"{b.scope.value}={b.match}"


def _spent(st: BudgetStatus) -> str:
    b = st.budget
    text = f"${st.spent_usd:.6f} of ${b.limit_usd} ({st.percent:.0f}%)"
    if st.unpriced_requests:
        text += f", {st.unpriced_requests} unpriced calls"
    return text


def states_from(fired: Sequence[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """Group ``(budget, kind, at_ns)`` rows (fired alerts) into per-budget fired maps."""
    out: dict[str, dict[str, int]] = {}
    for name, kind, at in fired:
        slot = out.setdefault(name, {})
        slot[kind] = max(slot.get(kind, 0), at)
    return out
