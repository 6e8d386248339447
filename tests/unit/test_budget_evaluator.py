"""The evaluator with an injected clock: spend, states, alerts once, blocks and lifts."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.budgets.evaluator import Evaluator
from lumen_sniff.budgets.model import (
    Action,
    Alert,
    Budget,
    BudgetState,
    Enforcement,
    ScopeKind,
    State,
)
from lumen_sniff.budgets.period import parse_period
from lumen_sniff.model import UsageEvent, UsageSource

NS = 10**9
T0 = 1_796_000_400 * NS  # 2026-11-30T01:00:00Z, a Monday


def _event(
    ts: int,
    cost: str | None,
    *,
    process: str = "agent",
    pid: int = 42,
    model: str = "gpt-4o-mini",
    tokens: int = 100,
    estimated: bool = False,
) -> UsageEvent:
    return UsageEvent(
        id=str(ts),
        started_at="",
        started_ns=ts,
        provider="openai",
        api="chat",
        model=model,
        stream=False,
        status=200,
        input_tokens=tokens,
        output_tokens=0,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_usd=None if cost is None else Decimal(cost),
        usage_source=UsageSource.ESTIMATED if estimated else UsageSource.REPORTED,
        pid=pid,
        process=process,
        service=process,
        duration_ms=10.0,
        ttft_ms=5.0,
        api_key_id="k1",
        tenant=None,
    )


def _budget(**kw: object) -> Budget:
    base: dict[str, object] = dict(
        name="b",
        scope=ScopeKind.SERVICE,
        match="agent",
        period=parse_period("day"),
        limit_usd=Decimal("1.00"),
    )
    base.update(kw)
    return Budget(**base)  # type: ignore[arg-type]


def _alerts(out: list[object]) -> list[str]:
    return [
        f"{a.kind}:{a.threshold}" if a.threshold else a.kind for a in out if isinstance(a, Alert)
    ]


def test_thresholds_fire_once_each_and_state_follows() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(), T0)
    out = ev.feed([_event(T0 + 1, "0.30")], T0 + 1)
    assert out == [] and ev.statuses(T0 + 1)[0].state is State.OK
    out = ev.feed([_event(T0 + 2, "0.25")], T0 + 2)
    assert _alerts(out) == ["threshold:50"]
    assert ev.statuses(T0 + 2)[0].state is State.WARNING
    assert _alerts(ev.feed([_event(T0 + 3, "0.01")], T0 + 3)) == []
    out = ev.feed([_event(T0 + 4, "0.30"), _event(T0 + 5, "0.30")], T0 + 5)
    assert _alerts(out) == ["threshold:80", "threshold:100"]
    st_ = ev.statuses(T0 + 5)[0]
    assert st_.state is State.EXCEEDED and st_.spent_usd == Decimal("1.16")
    assert st_.remaining_usd == 0 and st_.overshoot_usd == Decimal("0.16")
    assert st_.percent == 116.0
    assert st_.next_reset_ns == T0 - 3600 * NS + 86400 * NS  # UTC midnight
    # Other scopes are not counted.
    assert ev.feed([_event(T0 + 6, "5", process="other")], T0 + 6) == []


def test_block_applies_at_limit_and_lifts_at_period_reset() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(action=Action.BLOCK, thresholds=(100,)), T0)
    out = ev.feed([_event(T0 + 1, "0.6", pid=7), _event(T0 + 2, "0.6", pid=8)], T0 + 2)
    enf = [d for d in out if isinstance(d, Enforcement)]
    assert len(enf) == 1 and enf[0].active and enf[0].pids == {7, 8}
    assert enf[0].comms == {"agent"} and enf[0].action is Action.BLOCK
    assert "block_applied" in _alerts(out)
    assert ev.statuses(T0 + 3)[0].state is State.BLOCKED
    assert ev.tick(T0 + 3600 * NS) == []
    out = ev.tick(T0 + 23 * 3600 * NS)
    enf = [d for d in out if isinstance(d, Enforcement)]
    assert len(enf) == 1 and not enf[0].active and enf[0].reason == "period reset"
    assert ev.statuses(T0 + 23 * 3600 * NS)[0].state is State.OK


def test_rolling_window_lifts_by_itself_and_re_arms() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(action=Action.BLOCK, period=parse_period("1m")), T0)
    out = ev.feed([_event(T0, "1.5")], T0)
    assert any(isinstance(d, Enforcement) and d.active for d in out)
    assert ev.tick(T0 + 30 * NS) == []
    out = ev.tick(T0 + 61 * NS)
    assert [d.active for d in out if isinstance(d, Enforcement)] == [False]
    assert ev.statuses(T0 + 61 * NS)[0].spent_usd == 0
    # Thresholds fired less than a window ago stay quiet; later they fire again.
    out = ev.feed([_event(T0 + 125 * NS, "1.5")], T0 + 125 * NS)
    assert "threshold:100" in _alerts(out)


def test_unpriced_counts_by_tokens_and_requests_and_is_flagged() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(limit_tokens=250, limit_requests=10, action=Action.BLOCK), T0)
    ev.feed(
        [_event(T0 + 1, None), _event(T0 + 2, None), _event(T0 + 3, "0.01", estimated=True)], T0 + 3
    )
    s = ev.statuses(T0 + 3)[0]
    assert s.unpriced_requests == 2 and s.estimated_requests == 1 and s.tokens == 300
    assert s.spent_usd == Decimal("0.01") and s.state is State.BLOCKED  # 300/250 tokens


def test_reset_raise_and_remove_lift_a_block() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(action=Action.BLOCK), T0)
    ev.feed([_event(T0 + 1, "2")], T0 + 1)
    raised = ev.update(_budget(action=Action.BLOCK, limit_usd=Decimal(5)), T0 + 2)
    assert [d.active for d in raised if isinstance(d, Enforcement)] == [False]
    ev.update(_budget(action=Action.BLOCK), T0 + 3)
    assert ev.statuses(T0 + 3)[0].state is State.BLOCKED
    out = ev.reset("b", T0 + 4)
    assert [(d.active, d.reason) for d in out if isinstance(d, Enforcement)] == [
        (False, "budget reset")
    ]
    ev.feed([_event(T0 + 3, "2")], T0 + 5)  # before the reset: not counted
    assert ev.statuses(T0 + 5)[0].spent_usd == 0
    ev.feed([_event(T0 + 6, "2")], T0 + 6)
    assert [d.active for d in ev.remove("b", T0 + 7) if isinstance(d, Enforcement)] == [False]


def test_pause_is_a_kill_switch_until_resume() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(action=Action.PAUSE, period=parse_period("1m")), T0)
    out = ev.feed([_event(T0, "2")], T0)
    assert [(d.action, d.active) for d in out if isinstance(d, Enforcement)] == [
        (Action.PAUSE, True)
    ]
    assert ev.tick(T0 + 120 * NS) == []  # the window moved on, the pause holds
    assert ev.statuses(T0 + 120 * NS)[0].state is State.PAUSED
    out = ev.resume("b", T0 + 121 * NS)
    assert [d.active for d in out if isinstance(d, Enforcement)] == [False]


def test_restart_state_keeps_fired_alerts_quiet() -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(), T0, BudgetState(fired={"threshold:50": T0, "threshold:80": T0}))
    out = ev.feed([_event(T0 + 1, "0.9")], T0 + 1)
    assert _alerts(out) == []


def test_forecast_and_anomaly() -> None:
    ev = Evaluator(now_ns=T0)
    b = _budget(thresholds=(100,))
    ev.add(b, T0)
    start = T0 - 3600 * NS  # midnight; 3 h in, $0.2 spent → $1.6 by midnight
    now = start + 3 * 3600 * NS
    out = ev.feed([_event(now - k, "0.0666") for k in (1, 2, 3)], now)
    assert _alerts(out) == ["forecast"]
    ev.set_baseline("b", Decimal("0.01"))
    assert _alerts(ev.tick(now + 1)) == ["anomaly"]
    assert _alerts(ev.tick(now + 2)) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600), st.integers(1, 50)), max_size=60))
def test_rolling_sum_equals_the_events_in_the_window(calls: list[tuple[int, int]]) -> None:
    ev = Evaluator(now_ns=T0)
    ev.add(_budget(period=parse_period("2m"), limit_usd=Decimal(1000)), T0)
    now = T0
    kept: list[tuple[int, int]] = []
    for offset_s, cents in sorted(calls):
        now = T0 + offset_s * NS
        ev.feed([_event(now, f"{cents / 100:.2f}")], now)
        kept.append((now, cents))
    for probe in (now, now + 60 * NS, now + 121 * NS):
        got = ev.statuses(probe)[0].spent_usd
        # Buckets are 0.5 s wide: a call counts until its bucket's end leaves the window.
        want = sum(c for t, c in kept if t - t % (NS // 2) + NS // 2 > probe - 120 * NS)
        assert got == Decimal(want) / 100


def test_budget_is_frozen() -> None:
    b = _budget()
    assert dataclasses.is_dataclass(b)


def test_block_restored_after_restart_is_not_alerted_again() -> None:
    ev = Evaluator(now_ns=T0)
    fired = {"threshold:50": T0, "threshold:80": T0, "threshold:100": T0, "block_applied": T0}
    state = BudgetState(fired=fired)
    ev.add(_budget(action=Action.BLOCK), T0, state)
    out = ev.feed([_event(T0 + 1, "2")], T0 + 2)
    assert [type(d).__name__ for d in out] == ["Enforcement"]
    out = ev.reset("b", T0 + 3)
    assert _alerts(out) == ["block_lifted"]
    out = ev.feed([_event(T0 + 4, "2")], T0 + 4)
    assert "block_applied" in _alerts(out)
