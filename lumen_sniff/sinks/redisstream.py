"""Redis Streams sink: one ``XADD`` per call to ``lumen:events:{tenant}``.

Each entry's fields are the event's JSON-safe fields (:func:`event_to_dict`)
as strings; a null is left out, so an absent ``cost_usd`` means unpriced,
never $0. ``MAXLEN ~ maxlen`` keeps every stream bounded at Redis' cheap,
approximate trimming. One pipeline (a single round trip, no MULTI) per batch.

Reconnection: the client library reconnects on the next command after a
dropped connection; a failed batch raises, and the runner retries it with
backoff, then counts it as dropped. Entries of a batch that reached Redis
before a failure may be written twice by the retry (at-least-once); each
entry carries the event ``id`` so a consumer can tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from lumen_sniff.model import UsageEvent
from lumen_sniff.serialize import event_to_dict
from lumen_sniff.sinks.settings import RedisSettings

__all__ = ["RedisStreamSink", "entry_fields", "make", "stream_key"]


def stream_key(template: str, event: UsageEvent) -> str:
    """The stream key of ``event`` (``{tenant}``, ``{provider}`` substituted)."""
    return template.format(tenant=event.tenant or "unknown", provider=event.provider)


def entry_fields(event: UsageEvent) -> dict[str, str]:
    """The stream entry: every non-null event field, as text."""
    out: dict[str, str] = {}
    for key, value in event_to_dict(event).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": str(v) for k, v in value.items()})
        else:
            out[key] = str(value)
    for key in ("cost_usd", "provider_cost_usd"):  # exact Decimal text, not a float
        money = getattr(event, key)
        if money is not None:
            out[key] = str(money)
    return out


class RedisStreamSink:
    """XADDs each call to its tenant's stream."""

    name = "redis"

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        self._client: Any = redis.Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout_s,
            socket_connect_timeout=settings.timeout_s,
            health_check_interval=30,
        )

    def send(self, events: Sequence[UsageEvent]) -> None:
        """One pipelined XADD per event; raises on any connection or server error."""
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(
                stream_key(self._settings.key, event),
                entry_fields(event),
                maxlen=self._settings.maxlen,
                approximate=True,
            )
        pipe.execute()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def make(settings: RedisSettings) -> RedisStreamSink:
    """Sink-table factory for ``redis``."""
    return RedisStreamSink(settings)
