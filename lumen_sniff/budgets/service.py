"""The budget service: evaluator + database + enforcement + alerts, inside the daemon.

Data flow::

    daemon pump ──observe(events)──▶ Enforcer.learn (endpoints, who is who)
                                         Evaluator.feed ──▶ decisions
    tick task (every 0.25 s) ─────────▶ Evaluator.tick ──▶ decisions
    decisions: Enforcement ──▶ Enforcer.apply (at once: guard maps, SOCK_DESTROY, watchdog)
                            └─▶ persist queue ──▶ enforcement_log
               Alert ──▶ persist queue ──▶ alerts outbox (+ log line) ──▶ Outbox task ──▶ webhooks

Events are counted as they leave the pipeline (the daemon hands them over
before the store's batched commit, to block sooner); a restart rebuilds the
state from the database (:meth:`BudgetService.start` replays each budget's
window), and alerts already stored are not decided again. Enforcement
happens on the event loop with no await between the decision and the kernel
update, so the delay from a limit reached to refused connects is the store's
commit delay plus a map update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from lumen_sniff.budgets.enforcer import Enforcer
from lumen_sniff.budgets.evaluator import Decision, Evaluator, states_from
from lumen_sniff.budgets.messages import alert_payload, slot_of
from lumen_sniff.budgets.model import (
    PROCESS_SCOPES,
    SERVICE_IS_PROCESS_NAME,
    Action,
    Alert,
    Budget,
    BudgetState,
    BudgetStatus,
    Enforcement,
    ScopeKind,
)
from lumen_sniff.budgets.outbox import Outbox
from lumen_sniff.budgets.period import window
from lumen_sniff.budgets.settings import BudgetSettings, budget_from_mapping
from lumen_sniff.capture.bpf.runtime.cache import DEFAULT_CACHE_DIR
from lumen_sniff.model import UsageEvent
from lumen_sniff.store.budgetdb import BudgetDb

__all__ = ["BudgetError", "BudgetService", "budget_spec"]

log = logging.getLogger("lumen_sniff.budgets")

_TICK_S = 0.25
_IDLE_TICK_S = 5.0
_FIRED_LOOKBACK_NS = 32 * 86400 * 10**9
_ENDPOINT_MAX_AGE_NS = 30 * 86400 * 10**9
History = Callable[[int], AsyncIterator[UsageEvent]]
Baseline = Callable[[Budget, int], Awaitable[Decimal | None]]
_BASELINE_EVERY_S = 600.0


class BudgetError(ValueError):
    """A budget operation the caller got wrong (unknown name, bad spec…)."""


def budget_spec(b: Budget) -> dict[str, Any]:
    """A budget as the mapping :func:`budget_from_mapping` reads (stored for API budgets)."""
    spec: dict[str, Any] = {
        "name": b.name,
        "scope": b.scope.value,
        "period": b.period.text,
        "timezone": b.period.tz,
        "limit_usd": str(b.limit_usd),
        "thresholds": list(b.thresholds),
        "action": b.action.value,
    }
    if b.match:
        spec["match"] = b.match
    if b.limit_tokens:
        spec["limit_tokens"] = b.limit_tokens
    if b.limit_requests:
        spec["limit_requests"] = b.limit_requests
    return spec


class BudgetService:
    """Owns the evaluator, the enforcer and the outbox for the daemon's life."""

    def __init__(
        self,
        settings: BudgetSettings,
        db: BudgetDb,
        history: History,
        *,
        clock: Callable[[], int] = time.time_ns,
        baseline: Baseline | None = None,
        bpf_cache_dir: Path | None = DEFAULT_CACHE_DIR,
    ) -> None:
        self.settings = settings
        self._db = db
        self._history = history
        self._baseline = baseline
        self._clock = clock
        self.evaluator = Evaluator(now_ns=clock(), anomaly_factor=settings.anomaly_factor)
        self.enforcer = Enforcer(settings, cache_dir=bpf_cache_dir)
        self.outbox = Outbox(db, settings.webhooks, clock=clock)
        self._persist: asyncio.Queue[Callable[[], Coroutine[Any, Any, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._manual: dict[str, str] = {}
        # One thread for /proc and DNS lookups: getaddrinfo can block for seconds.
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumen-endpoints")

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Load API budgets, resets and fired alerts; replay each window; start tasks."""
        now = self._clock()
        budgets = list(self.settings.budgets)
        names = {b.name for b in budgets}
        for spec in await self._db.api_budgets():
            try:
                b = budget_from_mapping(spec, source="api")
            except ValueError as exc:
                log.error("stored budget %r is invalid, ignored: %s", spec.get("name"), exc)
                continue
            if b.name not in names:
                budgets.append(b)
        resets = await self._db.resets()
        fired = states_from(await self._db.fired(now - _FIRED_LOOKBACK_NS))
        manual = await self._db.manual_blocks()
        if manual or any(b.action is not Action.ALERT for b in budgets):
            self.enforcer.load()
        self.enforcer.restore_endpoints(await self._db.endpoints(now - _ENDPOINT_MAX_AGE_NS))
        for b in budgets:
            state = BudgetState(reset_ns=resets.get(b.name, 0), fired=fired.get(b.name, {}))
            self.evaluator.add(b, now, state)
        await self._replay(budgets, now)
        for scope, match, action, _, reason in manual:
            self._apply_manual(scope, match, Action(action), reason, now)
        self._tasks = [
            asyncio.create_task(c, name=n)
            for c, n in (
                (self._tick_loop(), "budget-tick"),
                (self._persist_loop(), "budget-persist"),
                (self.outbox.run(), "alert-outbox"),
            )
        ]
        log.info(
            "budgets: %d tracked, blocking: %s",
            len(budgets),
            self.enforcer.error or "ready",
        )

    async def _replay(self, budgets: Sequence[Budget], now: int) -> None:
        if not budgets:
            return
        since = min(window(b.period, now)[0] for b in budgets)
        batch: list[UsageEvent] = []
        async for event in self._history(since):
            batch.append(event)
            if len(batch) >= 1000:
                self._handle(self.evaluator.feed(batch, now), restored=True)
                batch = []
        self._handle(self.evaluator.feed(batch, now), restored=True)
        self._handle(self.evaluator.tick(now), restored=True)

    async def stop(self) -> None:
        """Persist what is queued, stop delivery, release blocks and pauses (fail-open)."""
        for task in self._tasks:
            if task.get_name() != "budget-persist":
                task.cancel()
        while not self._persist.empty():
            await self._persist.get_nowait()()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._lookups.shutdown(wait=True, cancel_futures=True)
        self.enforcer.stop()

    # -------------------------------------------------------------- events

    def observe(self, events: Sequence[UsageEvent]) -> None:
        """Count new events (called on the loop as they leave the pipeline)."""
        todo = self.enforcer.learn(events)
        if todo:
            loop = asyncio.get_running_loop()
            task = loop.run_in_executor(self._lookups, self.enforcer.discover, todo)
            task.add_done_callback(self._discovered)
        now = self._clock()
        self._handle(self.evaluator.feed(events, now))
        if self.evaluator.enforced():
            for st in self.evaluator.statuses(now):
                if st.budget.name in self.evaluator.enforced():
                    self.enforcer.refresh(st.budget.name, st.pids)
        self.enforcer.poll()  # calls that were in flight at a block may have ended

    def _discovered(self, task: asyncio.Future[set[tuple[str, int]]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        fresh = self.enforcer.add_endpoints(task.result())
        if fresh:
            now = self._clock()
            self._persist.put_nowait(lambda: self._db.save_endpoints(fresh, now))

    async def _tick_loop(self) -> None:
        while True:
            # Without budgets there is nothing to advance: wake rarely (issue 12: idle CPU).
            await asyncio.sleep(_TICK_S if self.evaluator.budgets else _IDLE_TICK_S)
            self._handle(self.evaluator.tick(self._clock()))
            self.enforcer.poll()  # the ceiling for calls in flight at a block

    async def _baseline_loop(self) -> None:
        # Anomaly alerts compare with the trailing baseline; refreshed every 10 min.
        while self._baseline is not None:
            now = self._clock()
            for b in self.evaluator.budgets:
                try:
                    self.evaluator.set_baseline(b.name, await self._baseline(b, now))
                except Exception:
                    log.exception("baseline of budget %s", b.name)
            await asyncio.sleep(_BASELINE_EVERY_S)

    async def _persist_loop(self) -> None:
        while True:
            job = await self._persist.get()
            try:
                await job()
            except Exception:
                log.exception("budget state could not be stored")

    # ----------------------------------------------------------- decisions

    def _handle(self, decisions: Sequence[Decision], *, restored: bool = False) -> None:
        statuses = (
            {s.budget.name: s for s in self.evaluator.statuses(self._clock())} if decisions else {}
        )
        for d in decisions:
            if isinstance(d, Enforcement):
                scope = statuses[d.budget].budget.scope if d.budget in statuses else None
                by_name = scope is ScopeKind.SERVICE and SERVICE_IS_PROCESS_NAME
                self.enforcer.apply(d, by_cgroup=scope in PROCESS_SCOPES and not by_name)
                self._log_enforcement(d, restored=restored)
            else:
                self._alert(d, statuses.get(d.budget))

    def _log_enforcement(self, e: Enforcement, *, restored: bool = False) -> None:
        verb = f"{e.action.value} {'applied' if e.active else 'lifted'}"
        reason = e.reason + (" (restored at start)" if restored else "")
        log.warning("budget %s: %s: %s (pids %s)", e.budget, verb, reason, sorted(e.pids))
        targets = {"pids": sorted(e.pids), "comms": sorted(e.comms)}
        self._persist.put_nowait(
            lambda: self._db.log_enforcement(
                at_ns=e.at_ns,
                budget=e.budget,
                action=e.action.value,
                active=e.active,
                reason=reason,
                targets=targets,
            )
        )

    def _alert(self, a: Alert, status: BudgetStatus | None) -> None:
        payload = alert_payload(a, status)

        async def store() -> None:
            new = await self._db.enqueue_alert(
                key=a.key,
                budget=a.budget,
                slot=slot_of(a),
                created_ns=a.at_ns,
                payload=payload,
                dests=self.outbox.destinations,
            )
            if new:
                log.warning("ALERT %s", a.message)
                self.outbox.wake()

        self._persist.put_nowait(store)

    # ------------------------------------------------------------ operations

    def statuses(self) -> list[BudgetStatus]:
        """Every budget's live status."""
        return self.evaluator.statuses(self._clock())

    def manual(self) -> dict[str, str]:
        """Active manual kill switches: key → reason."""
        return dict(self._manual)

    async def create(self, spec: dict[str, Any]) -> Budget:
        """Create or replace an API budget (config budgets cannot be replaced)."""
        try:
            b = budget_from_mapping(spec, source="api")
        except ValueError as exc:
            raise BudgetError(str(exc)) from None
        now = self._clock()
        current = {x.name: x for x in self.evaluator.budgets}
        old = current.get(b.name)
        if old is not None and old.source == "config":
            raise BudgetError(f"budget {b.name!r} comes from the config file; edit it there")
        if b.action is not Action.ALERT:
            self.enforcer.load()
        await self._db.save_budget(b.name, budget_spec(b), now)
        if old is not None and (old.scope, old.match, old.period) == (b.scope, b.match, b.period):
            self._handle(self.evaluator.update(b, now))
            return b
        if old is not None:
            self._handle(self.evaluator.remove(b.name, now))
        resets = await self._db.resets()
        self.evaluator.add(b, now, BudgetState(reset_ns=resets.get(b.name, 0)))
        await self._replay([b], now)
        return b

    async def remove(self, name: str) -> None:
        """Delete an API budget (lifting its block or pause)."""
        b = self._budget(name)
        if b.source == "config":
            raise BudgetError(f"budget {name!r} comes from the config file; remove it there")
        await self._db.delete_budget(name)
        self._handle(self.evaluator.remove(name, self._clock()))

    async def reset(self, name: str) -> None:
        """Count from zero from now on (lifts a block or pause)."""
        self._budget(name)
        now = self._clock()
        await self._db.save_reset(name, now)
        self._handle(self.evaluator.reset(name, now))

    async def resume(self, name: str) -> None:
        """Continue a paused budget's processes until its window resets."""
        self._budget(name)
        self._handle(self.evaluator.resume(name, self._clock()))

    async def block(self, service: str, *, on: bool, reason: str = "manual kill switch") -> None:
        """Manual kill switch for a service (process name): block or unblock."""
        now = self._clock()
        await self._db.set_manual_block("service", service, "block", on, now, reason)
        if on:
            self.enforcer.load()
            self._apply_manual("service", service, Action.BLOCK, reason, now)
        else:
            key = f"manual:service:{service}"
            self._manual.pop(key, None)
            e = Enforcement(
                budget=key, action=Action.BLOCK, active=False, reason="unblocked", at_ns=now
            )
            self.enforcer.apply(e)
            self._log_enforcement(e)

    def _apply_manual(self, scope: str, match: str, action: Action, reason: str, now: int) -> None:
        key = f"manual:{scope}:{match}"
        self._manual[key] = reason
        e = Enforcement(
            budget=key,
            action=action,
            active=True,
            reason=reason,
            at_ns=now,
            comms=frozenset({match}),
        )
        self.enforcer.apply(e)
        self._log_enforcement(e)

    async def test_alert(self) -> list[str]:
        """Send a test alert to the log and every webhook now; errors per webhook."""
        now = self._clock()
        a = Alert(
            budget="test",
            kind="test",
            key=f"test:{now}",
            at_ns=now,
            message="test alert from lumen-sniff (alerts test)",
        )
        log.warning("ALERT %s", a.message)
        return await self.outbox.send_now(alert_payload(a, None), a.key)

    async def enforcement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest blocks, pauses and lifts, newest first."""
        return await self._db.enforcement_log(limit)

    async def recent_alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest alerts with their delivery states, newest first."""
        return await self._db.recent_alerts(limit)

    def _budget(self, name: str) -> Budget:
        for b in self.evaluator.budgets:
            if b.name == name:
                return b
        raise BudgetError(f"no budget named {name!r}")
