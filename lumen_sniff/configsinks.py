"""``[otlp]`` and ``[redis]`` config tables → their validated sink settings.

Kept apart from :mod:`lumen_sniff.config` so the export options live in one
place; the config validator hands in its own typed getters (which locate a
bad value by file and line), so errors read exactly like every other key's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from lumen_sniff.errors import ConfigError
from lumen_sniff.sinks.settings import OTLP_PROTOCOLS, OtlpSettings, QueueSettings, RedisSettings

__all__ = ["OTLP_KEYS", "REDIS_KEYS", "SinkConfigReader", "otlp_settings", "redis_settings"]

_QUEUE_KEYS = ("queue_size", "batch_max", "batch_wait_s", "retry_pauses_s", "close_timeout_s")
OTLP_KEYS = (
    "enabled", "endpoint", "protocol", "headers", "resource", "timeout_s",
    "metrics_interval_s", "logs", "metrics", *_QUEUE_KEYS,
)  # fmt: skip
REDIS_KEYS = ("enabled", "url", "key", "maxlen", "timeout_s", *_QUEUE_KEYS)


class SinkConfigReader(Protocol):
    """The typed getters of the config validator."""

    def error(self, table: str, key: str, reason: str) -> ConfigError:
        """A ConfigError naming file, line, table and key."""


def _bool(r: SinkConfigReader, t: dict[str, Any], name: str, key: str, default: bool) -> bool:
    value = t.get(key, default)
    if not isinstance(value, bool):
        raise r.error(name, key, f"must be true or false, got {value!r}")
    return value


def _num(
    r: SinkConfigReader, t: dict[str, Any], name: str, key: str, default: float, minimum: float
) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise r.error(name, key, f"must be a number, got {value!r}")
    if value < minimum:
        raise r.error(name, key, f"must be >= {minimum}, got {value}")
    return float(value)


def _str(r: SinkConfigReader, t: dict[str, Any], name: str, key: str, default: str) -> str:
    value = t.get(key, default)
    if not isinstance(value, str) or not value:
        raise r.error(name, key, f"must be a non-empty string, got {value!r}")
    return value


def _strmap(r: SinkConfigReader, t: dict[str, Any], name: str, key: str) -> dict[str, str]:
    value = t.get(key, {})
    if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
        raise r.error(name, key, "must be a table of string values")
    return {str(k): v for k, v in value.items()}


def _queue(r: SinkConfigReader, t: dict[str, Any], name: str) -> QueueSettings:
    d = QueueSettings()
    pauses = t.get("retry_pauses_s", list(d.retry_pauses_s))
    if not isinstance(pauses, list) or any(
        isinstance(p, bool) or not isinstance(p, int | float) or p < 0 for p in pauses
    ):
        raise r.error(name, "retry_pauses_s", "must be a list of seconds >= 0")
    num: Callable[[str, float, float], float] = lambda k, dv, lo: _num(r, t, name, k, dv, lo)  # noqa: E731
    return QueueSettings(
        queue_size=int(num("queue_size", d.queue_size, 1)),
        batch_max=int(num("batch_max", d.batch_max, 1)),
        batch_wait_s=num("batch_wait_s", d.batch_wait_s, 0),
        retry_pauses_s=tuple(float(p) for p in pauses),
        close_timeout_s=num("close_timeout_s", d.close_timeout_s, 0),
    )


def otlp_settings(r: SinkConfigReader, t: dict[str, Any]) -> OtlpSettings:
    """Validate ``[otlp]``."""
    d = OtlpSettings()
    protocol = _str(r, t, "otlp", "protocol", d.protocol)
    if protocol not in OTLP_PROTOCOLS:
        raise r.error("otlp", "protocol", f"must be one of {', '.join(OTLP_PROTOCOLS)}")
    endpoint = _str(r, t, "otlp", "endpoint", d.endpoint)
    if protocol == "http/protobuf" and not re.match(r"https?://[^/\s]+", endpoint):
        raise r.error("otlp", "endpoint", f"must be an http:// or https:// URL, got {endpoint!r}")
    return OtlpSettings(
        enabled=_bool(r, t, "otlp", "enabled", False),
        endpoint=endpoint,
        protocol=protocol,
        headers=_strmap(r, t, "otlp", "headers"),
        resource=_strmap(r, t, "otlp", "resource"),
        timeout_s=_num(r, t, "otlp", "timeout_s", d.timeout_s, 0.1),
        metrics_interval_s=_num(r, t, "otlp", "metrics_interval_s", d.metrics_interval_s, 0.1),
        logs=_bool(r, t, "otlp", "logs", True),
        metrics=_bool(r, t, "otlp", "metrics", True),
        queue=_queue(r, t, "otlp"),
    )


def redis_settings(r: SinkConfigReader, t: dict[str, Any]) -> RedisSettings:
    """Validate ``[redis]``."""
    d = RedisSettings()
    url = _str(r, t, "redis", "url", d.url)
    if not re.match(r"(rediss?|unix)://", url):
        raise r.error("redis", "url", f"must be a redis://, rediss:// or unix:// URL, got {url!r}")
    key = _str(r, t, "redis", "key", d.key)
    try:
        key.format(tenant="t", provider="p")
    except (KeyError, IndexError, ValueError) as exc:
        reason = f"only {{tenant}} and {{provider}} may be used ({exc})"
        raise r.error("redis", "key", reason) from None
    return RedisSettings(
        enabled=_bool(r, t, "redis", "enabled", False),
        url=url,
        key=key,
        maxlen=int(_num(r, t, "redis", "maxlen", d.maxlen, 1)),
        timeout_s=_num(r, t, "redis", "timeout_s", d.timeout_s, 0.1),
        queue=_queue(r, t, "redis"),
    )
