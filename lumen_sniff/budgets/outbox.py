"""Alert delivery: the log at once, webhooks from the SQLite outbox with retries.

Every alert is stored (with one delivery row per webhook) before anything is
sent; see :mod:`lumen_sniff.store.budgetdb` for why a restart neither loses nor
repeats one. A failed POST (transport error or non-2xx) is retried after
1, 2, 4… seconds, at most :data:`MAX_BACKOFF_S` apart, up to
:data:`MAX_ATTEMPTS` attempts; then the delivery is marked failed.

A webhook URL is a secret (a Slack hook's path is its credential), so no
error text, stored ``last_error`` or log line ever carries more of a URL than
its scheme and host: :func:`redact_urls` is applied to transport errors, and a
filter on httpx's own logger (which logs every request's full URL at INFO)
does the same to its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from lumen_sniff.budgets.messages import slack_body
from lumen_sniff.budgets.settings import Webhook
from lumen_sniff.store.budgetdb import BudgetDb, Delivery

__all__ = ["MAX_ATTEMPTS", "MAX_BACKOFF_S", "Outbox", "backoff_s", "redact_urls"]

log = logging.getLogger("lumen_sniff.alerts")

MAX_ATTEMPTS = 10
MAX_BACKOFF_S = 300.0
_MAX_ALERTS = 10_000
_MAX_AGE_NS = 7 * 86400 * 10**9


_URL = re.compile(r"(https?://)(?:[^/\s'\"@]*@)?([^/\s'\"?#]+)[^\s'\"]*", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """``text`` with every http(s) URL cut to its scheme and host (no user, path or query)."""
    return _URL.sub(r"\1\2", text)


class _RedactFilter(logging.Filter):
    """Cuts the URLs in a log record to scheme and host before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_urls(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACT = _RedactFilter()


def backoff_s(attempts: int) -> float:
    """Wait before attempt ``attempts + 1``."""
    return float(min(2 ** max(attempts - 1, 0), MAX_BACKOFF_S))


class Outbox:
    """Delivers pending alerts to webhooks until stopped."""

    def __init__(
        self,
        db: BudgetDb,
        webhooks: Sequence[Webhook],
        *,
        clock: Callable[[], int] = time.time_ns,
        poll_s: float = 0.2,
        timeout_s: float = 5.0,
    ) -> None:
        self._db = db
        self._hooks = tuple(webhooks)
        self._clock = clock
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        # httpx (with rich and pygments behind it) is imported on the first post:
        # a daemon without webhooks never pays its import time (issue 12: ready).
        self._timeout_s = timeout_s
        self._http: Any = None
        self.stats = {"sent": 0, "retried": 0, "failed": 0}

    @property
    def destinations(self) -> list[str]:
        """Delivery destinations, one per webhook."""
        return [f"webhook:{i}" for i in range(len(self._hooks))]

    def wake(self) -> None:
        """Try due deliveries now (an alert was just stored)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due alerts forever (cancel to stop)."""
        last_prune = 0
        try:
            while True:
                now = self._clock()
                for d in await self._db.due(now):
                    await self._deliver(d)
                if now - last_prune > 60 * 10**9:
                    last_prune = now
                    await self._db.prune_alerts(
                        max_alerts=_MAX_ALERTS, fail_before_ns=now - _MAX_AGE_NS
                    )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    # No webhook: nothing can become due, so wait for a wake() only
                    # rather than query the outbox five times a second (issue 12).
                    await asyncio.wait_for(self._wake.wait(), self._poll_s if self._hooks else None)
        finally:
            if self._http is not None:
                await self._http.aclose()

    async def send_now(self, payload: dict[str, object], key: str) -> list[str]:
        """POST a payload to every webhook once (``alerts test``); errors per hook."""
        errors = []
        for i, hook in enumerate(self._hooks):
            err = await self._post(hook, payload, key)
            if err:
                errors.append(f"webhook:{i}: {err}")
        return errors

    async def _deliver(self, d: Delivery) -> None:
        index = int(d.dest.split(":", 1)[1])
        now = self._clock()
        if index >= len(self._hooks):
            await self._db.mark(d, state="failed", now_ns=now, error="webhook no longer configured")
            return
        err = await self._post(self._hooks[index], d.payload, d.key)
        now = self._clock()
        if err is None:
            self.stats["sent"] += 1
            await self._db.mark(d, state="sent", now_ns=now)
        elif d.attempts + 1 >= MAX_ATTEMPTS:
            self.stats["failed"] += 1
            log.error("alert %s to %s failed for good: %s", d.key, d.dest, err)
            await self._db.mark(d, state="failed", now_ns=now, error=err)
        else:
            self.stats["retried"] += 1
            wait = backoff_s(d.attempts + 1)
            log.warning("alert %s to %s failed (%s); retry in %.0f s", d.key, d.dest, err, wait)
            await self._db.mark(
                d, state="pending", now_ns=now, next_ns=now + int(wait * 10**9), error=err
            )

    async def _post(self, hook: Webhook, payload: dict[str, object], key: str) -> str | None:
        body = slack_body(payload) if hook.format == "slack" else payload
        headers = {"Idempotency-Key": key, **hook.headers}
        import httpx

        if self._http is None:
            logging.getLogger("httpx").addFilter(_REDACT)  # a second add is a no-op
            self._http = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        try:
            response = await self._http.post(hook.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {redact_urls(str(exc))}"
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        return None
