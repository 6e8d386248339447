"""Budget state in SQLite: API-made budgets, resets, kill switches, the enforcement
log and the alert outbox.

The outbox: an alert is inserted once (its ``key`` is unique, so deciding the
same alert twice stores it once) with one ``alert_deliveries`` row per
destination, in one transaction, before any delivery is tried. A delivery is
marked ``sent`` after its destination answered 2xx, or ``failed`` after its
last attempt; until then it is ``pending`` with the time of its next attempt.
So a restart loses nothing (pending rows are picked up again) and repeats
nothing that was marked sent. The window between a webhook's 2xx and the mark
is the only place a crash can repeat an alert; receivers can use the
``Idempotency-Key`` header (the alert's key) to drop that duplicate.

The outbox is bounded: beyond ``max_alerts`` rows the oldest alerts whose
deliveries are all finished are deleted, and a pending delivery older than
``max_age_ns`` is failed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = ["BudgetDb", "Delivery"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One pending delivery of one alert to one destination."""

    alert_id: int
    """Row id of the alert."""
    key: str
    """The alert's unique key."""
    dest: str
    """``webhook:<n>`` (index in the config)."""
    attempts: int
    """Attempts made so far."""
    created_ns: int
    """When the alert was decided."""
    payload: dict[str, Any]
    """The alert as JSON."""


class BudgetDb:
    """Reads and writes of the budget tables, on the store's connections and write lock."""

    def __init__(
        self, wconn: aiosqlite.Connection, rconn: aiosqlite.Connection, lock: asyncio.Lock
    ) -> None:
        self._w = wconn
        self._r = rconn
        self._lock = lock

    async def _write(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> int | None:
        """Run ``statements`` in one transaction; the last statement's lastrowid."""
        last = None
        async with self._lock:
            await self._w.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    cur = await self._w.execute(sql, args)
                    last = cur.lastrowid
                    await cur.close()
                await self._w.execute("COMMIT")
            except BaseException:
                await self._w.execute("ROLLBACK")
                raise
        return last

    async def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self._r.execute(sql, args) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    # ------------------------------------------------------------ budgets

    async def api_budgets(self) -> list[dict[str, Any]]:
        """Specs of the budgets made through the API, oldest first."""
        return [
            json.loads(s)
            for (s,) in await self._rows("SELECT spec FROM budgets ORDER BY created_ns")
        ]

    async def save_budget(self, name: str, spec: dict[str, Any], now_ns: int) -> None:
        """Create or replace an API budget."""
        await self._write(
            [
                (
                    "INSERT INTO budgets (name, spec, created_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                    (name, json.dumps(spec, sort_keys=True), now_ns),
                )
            ]
        )

    async def delete_budget(self, name: str) -> None:
        """Forget an API budget and its reset."""
        await self._write(
            [
                ("DELETE FROM budgets WHERE name = ?", (name,)),
                ("DELETE FROM budget_resets WHERE name = ?", (name,)),
            ]
        )

    async def resets(self) -> dict[str, int]:
        """Budget name → time of its last manual reset."""
        return {n: int(t) for n, t in await self._rows("SELECT name, reset_ns FROM budget_resets")}

    async def save_reset(self, name: str, at_ns: int) -> None:
        """Record a manual reset."""
        await self._write(
            [
                (
                    "INSERT INTO budget_resets (name, reset_ns) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET reset_ns = excluded.reset_ns",
                    (name, at_ns),
                )
            ]
        )

    # ---------------------------------------------------------- endpoints

    async def save_endpoints(self, endpoints: Sequence[tuple[str, int]], now_ns: int) -> None:
        """Remember LLM endpoints learned from traffic."""
        await self._write(
            [
                (
                    "INSERT INTO llm_endpoints (addr, port, last_seen_ns) VALUES (?, ?, ?) "
                    "ON CONFLICT (addr, port) DO UPDATE SET last_seen_ns = excluded.last_seen_ns",
                    (addr, port, now_ns),
                )
                for addr, port in endpoints
            ]
        )

    async def endpoints(self, since_ns: int) -> list[tuple[str, int]]:
        """LLM endpoints seen since ``since_ns``."""
        rows = await self._rows(
            "SELECT addr, port FROM llm_endpoints WHERE last_seen_ns >= ?", (since_ns,)
        )
        return [(str(a), int(p)) for a, p in rows]

    # ----------------------------------------------------- kill switches

    async def manual_blocks(self) -> list[tuple[str, str, str, int, str]]:
        """(scope, match, action, created_ns, reason) of every manual block."""
        rows = await self._rows(
            "SELECT scope, match, action, created_ns, reason FROM manual_blocks ORDER BY created_ns"
        )
        return [(str(a), str(b), str(c), int(d), str(e)) for a, b, c, d, e in rows]

    async def set_manual_block(
        self, scope: str, match: str, action: str, on: bool, now_ns: int, reason: str
    ) -> None:
        """Add or remove a manual block."""
        if on:
            await self._write(
                [
                    (
                        "INSERT OR REPLACE INTO manual_blocks VALUES (?, ?, ?, ?, ?)",
                        (scope, match, action, now_ns, reason),
                    )
                ]
            )
        else:
            await self._write(
                [
                    (
                        "DELETE FROM manual_blocks WHERE scope = ? AND match = ? AND action = ?",
                        (scope, match, action),
                    )
                ]
            )

    # ----------------------------------------------------- enforcement log

    async def log_enforcement(
        self,
        *,
        at_ns: int,
        budget: str,
        action: str,
        active: bool,
        reason: str,
        targets: dict[str, Any],
    ) -> None:
        """Append one block/pause/lift to the log."""
        await self._write(
            [
                (
                    "INSERT INTO enforcement_log (at_ns, budget, action, active, reason, targets) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        at_ns,
                        budget,
                        action,
                        int(active),
                        reason,
                        json.dumps(targets, sort_keys=True),
                    ),
                )
            ]
        )

    async def enforcement_log(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest entries, newest first."""
        rows = await self._rows(
            "SELECT at_ns, budget, action, active, reason, targets FROM enforcement_log "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "at_ns": a,
                "budget": b,
                "action": c,
                "active": bool(d),
                "reason": e,
                "targets": json.loads(f),
            }
            for a, b, c, d, e, f in rows
        ]

    # ------------------------------------------------------------- outbox

    async def enqueue_alert(
        self,
        *,
        key: str,
        budget: str,
        slot: str,
        created_ns: int,
        payload: dict[str, Any],
        dests: Sequence[str],
    ) -> bool:
        """Store an alert and its deliveries; False when its key was stored before."""
        if await self._rows("SELECT 1 FROM alerts WHERE key = ?", (key,)):
            return False
        async with self._lock:
            await self._w.execute("BEGIN IMMEDIATE")
            try:
                cur = await self._w.execute(
                    "INSERT INTO alerts (key, budget, slot, created_ns, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, budget, slot, created_ns, json.dumps(payload, sort_keys=True)),
                )
                alert_id = cur.lastrowid
                await cur.close()
                for dest in dests:
                    await self._w.execute(
                        "INSERT INTO alert_deliveries (alert_id, dest, state, attempts, next_ns) "
                        "VALUES (?, ?, 'pending', 0, ?)",
                        (alert_id, dest, created_ns),
                    )
                await self._w.execute("COMMIT")
            except BaseException:
                await self._w.execute("ROLLBACK")
                raise
        return True

    async def fired(self, since_ns: int) -> list[tuple[str, str, int]]:
        """(budget, slot, created_ns) of the alerts decided since ``since_ns``."""
        rows = await self._rows(
            "SELECT budget, slot, created_ns FROM alerts WHERE created_ns >= ?", (since_ns,)
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    async def due(self, now_ns: int, limit: int = 50) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first."""
        rows = await self._rows(
            "SELECT d.alert_id, a.key, d.dest, d.attempts, a.created_ns, a.payload "
            "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id "
            "WHERE d.state = 'pending' AND d.next_ns <= ? ORDER BY d.next_ns LIMIT ?",
            (now_ns, limit),
        )
        return [
            Delivery(alert_id=a, key=k, dest=d, attempts=n, created_ns=c, payload=json.loads(p))
            for a, k, d, n, c, p in rows
        ]

    async def mark(
        self, d: Delivery, *, state: str, now_ns: int, next_ns: int = 0, error: str | None = None
    ) -> None:
        """Record an attempt: ``sent``, ``failed``, or ``pending`` again at ``next_ns``."""
        await self._write(
            [
                (
                    "UPDATE alert_deliveries SET state = ?, attempts = attempts + 1, next_ns = ?, "
                    "last_error = ?, sent_ns = ? WHERE alert_id = ? AND dest = ?",
                    (
                        state,
                        next_ns,
                        error,
                        now_ns if state == "sent" else None,
                        d.alert_id,
                        d.dest,
                    ),
                )
            ]
        )

    async def recent_alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest alerts with their delivery states, newest first."""
        rows = await self._rows(
            "SELECT a.id, a.key, a.created_ns, a.payload, "
            "group_concat(d.dest || '=' || d.state || ':' || d.attempts, ' ') "
            "FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id "
            "GROUP BY a.id ORDER BY a.id DESC LIMIT ?",
            (limit,),
        )
        return [
            {"key": k, "created_ns": c, **json.loads(p), "deliveries": s or ""}
            for _, k, c, p, s in rows
        ]

    async def prune_alerts(self, *, max_alerts: int, fail_before_ns: int) -> None:
        """Keep the outbox bounded (see the module docstring)."""
        await self._write(
            [
                (
                    "UPDATE alert_deliveries SET state = 'failed', last_error = 'too old' "
                    "WHERE state = 'pending' AND alert_id IN "
                    "(SELECT id FROM alerts WHERE created_ns < ?)",
                    (fail_before_ns,),
                ),
                (
                    "DELETE FROM alert_deliveries WHERE alert_id IN "
                    "(SELECT id FROM alerts WHERE id <= "
                    "(SELECT MAX(id) FROM alerts) - ? AND id NOT IN (SELECT alert_id FROM "
                    "alert_deliveries WHERE state = 'pending'))",
                    (max_alerts,),
                ),
                (
                    "DELETE FROM alerts WHERE id <= (SELECT MAX(id) FROM alerts) - ? AND id NOT IN "
                    "(SELECT alert_id FROM alert_deliveries WHERE state = 'pending')",
                    (max_alerts,),
                ),
            ]
        )
