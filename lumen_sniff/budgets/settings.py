"""``[[budgets]]``, ``[enforcement]`` and ``[alerts]`` of the TOML config → :class:`BudgetSettings`.

Validated values and nothing else (no name resolution, no file but the config).
Errors name the file, the line of the offending key (or of its ``[[budgets]]``
header) and the reason, like the rest of the config::

    /etc/lumen-sniff/config.toml:14: [[budgets]] #2 (agents) limit_usd: must be a number > 0

Example::

    [[budgets]]
    name = "agents-daily"
    scope = "service"          # global provider model service unit container api_key_id tenant
    match = "my-agent"         # the scope's value (not for global)
    period = "day"             # hour day week month, or rolling: 10m, 24h, 7d
    timezone = "Europe/Paris"  # calendar periods; default UTC
    limit_usd = 20
    limit_tokens = 2000000     # optional
    limit_requests = 5000      # optional
    thresholds = [50, 80, 100]
    action = "block"           # alert | block | pause

    [enforcement]
    allowlist = ["10.1.2.3", "192.168.0.0/16", "llm-gateway.internal"]  # never blocked
    fail_closed = false        # true: blocks outlive the daemon (pinned BPF link)

    [alerts]
    anomaly_factor = 3.0
    [[alerts.webhooks]]
    url = "https://hooks.example/T000/B000"
    format = "slack"           # json | slack
    headers = { Authorization = "Bearer change-me" }
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lumen_sniff.budgets.model import Action, Budget, ScopeKind
from lumen_sniff.budgets.period import parse_period
from lumen_sniff.errors import ConfigError

__all__ = ["BudgetSettings", "Webhook", "budget_from_mapping", "parse_budget_settings"]

_BUDGET_KEYS = (
    "name",
    "scope",
    "match",
    "period",
    "timezone",
    "limit_usd",
    "limit_tokens",
    "limit_requests",
    "thresholds",
    "action",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Webhook:
    """Where alerts are POSTed."""

    url: str
    """http(s) URL."""
    format: str = "json"
    """``json`` (the alert as an object) or ``slack`` (``{"text": ...}``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers (a token)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetSettings:
    """Budgets from the config, plus enforcement and alert settings."""

    budgets: tuple[Budget, ...] = ()
    """Budgets from ``[[budgets]]`` (API-made ones live in the database)."""
    allowlist: tuple[str, ...] = ()
    """Hosts, addresses or CIDR blocks that are never blocked."""
    fail_closed: bool = False
    """Keep blocks when the daemon dies (pinned BPF link); default fail-open."""
    anomaly_factor: float = 3.0
    """Spend rate over the trailing baseline that raises an anomaly alert."""
    webhooks: tuple[Webhook, ...] = ()
    """Alert destinations besides the log."""


def budget_from_mapping(raw: Mapping[str, Any], source: str = "config") -> Budget:
    """One budget from a TOML table or an API body.

    Raises:
        ValueError: ``"<key>: <reason>"``.
    """
    for key in raw:
        if key not in _BUDGET_KEYS:
            raise ValueError(f"{key}: unknown key; expected one of {', '.join(_BUDGET_KEYS)}")
    name = _req_str(raw, "name")
    if not _NAME.fullmatch(name):
        raise ValueError("name: 1-64 letters, digits, '_', '.', ':' or '-'")
    try:
        scope = ScopeKind(_req_str(raw, "scope", "global"))
    except ValueError:
        raise ValueError(f"scope: must be one of {', '.join(s.value for s in ScopeKind)}") from None
    match = _req_str(raw, "match", "")
    if scope is not ScopeKind.GLOBAL and not match:
        raise ValueError(f"match: required for scope {scope.value!r}")
    if scope is ScopeKind.GLOBAL and match:
        raise ValueError("match: must be empty for scope 'global'")
    try:
        period = parse_period(_req_str(raw, "period"), _req_str(raw, "timezone", "UTC"))
    except ValueError as exc:
        key = "timezone" if "time zone" in str(exc) else "period"
        raise ValueError(f"{key}: {exc}") from None
    try:
        action = Action(_req_str(raw, "action", "alert"))
    except ValueError:
        raise ValueError("action: must be alert, block or pause") from None
    thresholds = raw.get("thresholds", [50, 80, 100])
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(type(t) is int and 1 <= t <= 1000 for t in thresholds)
    ):
        raise ValueError("thresholds: must be a list of whole percentages 1-1000")
    return Budget(
        name=name,
        scope=scope,
        match=match,
        period=period,
        limit_usd=_money(raw.get("limit_usd")),
        limit_tokens=_opt_int(raw, "limit_tokens"),
        limit_requests=_opt_int(raw, "limit_requests"),
        thresholds=tuple(sorted(set(thresholds))),
        action=action,
        source=source,
    )


def parse_budget_settings(doc: Mapping[str, Any], path: Path, text: str) -> BudgetSettings:
    """Validate the budget-related parts of a parsed config document.

    Raises:
        ConfigError: naming the file, the line and the reason.
    """
    loc = _Locator(path, text)
    raw_budgets = doc.get("budgets", [])
    if not isinstance(raw_budgets, list):
        raise loc.error("budgets", 0, None, "must be [[budgets]] tables")
    budgets: list[Budget] = []
    for i, raw in enumerate(raw_budgets):
        if not isinstance(raw, dict):
            raise loc.error("budgets", i, None, "must be a table")
        try:
            budget = budget_from_mapping(raw)
        except ValueError as exc:
            key, _, reason = str(exc).partition(": ")
            raise loc.error("budgets", i, key, reason, raw.get("name")) from None
        if any(b.name == budget.name for b in budgets):
            raise loc.error("budgets", i, "name", f"duplicate budget name {budget.name!r}")
        budgets.append(budget)
    enf = _table(doc, "enforcement", ("allowlist", "fail_closed"), loc)
    alerts = _table(doc, "alerts", ("anomaly_factor", "webhooks"), loc)
    allow = enf.get("allowlist", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) and a for a in allow):
        raise loc.error("enforcement", None, "allowlist", "must be a list of hosts or addresses")
    fail_closed = enf.get("fail_closed", False)
    if not isinstance(fail_closed, bool):
        raise loc.error("enforcement", None, "fail_closed", "must be true or false")
    factor = alerts.get("anomaly_factor", 3.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 1:
        raise loc.error("alerts", None, "anomaly_factor", "must be a number > 1")
    return BudgetSettings(
        budgets=tuple(budgets),
        allowlist=tuple(allow),
        fail_closed=fail_closed,
        anomaly_factor=float(factor),
        webhooks=_webhooks(alerts, loc),
    )


def _webhooks(alerts: Mapping[str, Any], loc: _Locator) -> tuple[Webhook, ...]:
    raw = alerts.get("webhooks", [])
    if not isinstance(raw, list):
        raise loc.error("alerts", None, "webhooks", "must be [[alerts.webhooks]] tables")
    out = []
    for i, hook in enumerate(raw):
        if not isinstance(hook, dict):
            raise loc.error("alerts.webhooks", i, None, "must be a table")
        for key in hook:
            if key not in ("url", "format", "headers"):
                raise loc.error(
                    "alerts.webhooks", i, key, "unknown key; expected url, format, headers"
                )
        url = hook.get("url")
        if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
            raise loc.error("alerts.webhooks", i, "url", "must be an http:// or https:// URL")
        fmt = hook.get("format", "json")
        if fmt not in ("json", "slack"):
            raise loc.error("alerts.webhooks", i, "format", "must be json or slack")
        headers = hook.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise loc.error("alerts.webhooks", i, "headers", "must be a table of strings")
        out.append(Webhook(url=url, format=fmt, headers=dict(headers)))
    return tuple(out)


def _table(
    doc: Mapping[str, Any], name: str, keys: tuple[str, ...], loc: _Locator
) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise loc.error(name, None, None, "must be a table")
    for key in value:
        if key not in keys:
            raise loc.error(name, None, key, f"unknown key; expected one of {', '.join(keys)}")
    return value


def _req_str(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise ValueError(f"{key}: required")
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be a string")
    return value


def _money(value: Any) -> Decimal:
    if value is None:
        raise ValueError(
            "limit_usd: required (USD; use a token or request limit as well if you like)"
        )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("limit_usd: must be a number")
    try:
        money = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"limit_usd: must be a number, got {value!r}") from None
    if not money.is_finite() or money <= 0:
        raise ValueError(f"limit_usd: must be a number > 0, got {value!r}")
    return money


def _opt_int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is not int or value <= 0:
        raise ValueError(f"{key}: must be a whole number > 0")
    return value


class _Locator:
    """Finds the line of a key inside the Nth ``[[table]]`` (tomllib keeps no positions)."""

    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()

    def error(
        self, table: str, index: int | None, key: str | None, reason: str, name: Any = None
    ) -> ConfigError:
        line = self._line(table, index, key)
        where = f"{self._path}:{line}" if line else str(self._path)
        if index is None:
            label = f"[{table}]"
        else:
            label = f"[[{table}]] #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")
        return ConfigError(f"{where}: {label}{' ' + key if key else ''}: {reason}")

    def _line(self, table: str, index: int | None, key: str | None) -> int | None:
        header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
        seen, inside, start = -1, False, None
        for number, text in enumerate(self._lines, start=1):
            head = header.match(text)
            if head:
                name = head.group(1).replace(" ", "")
                inside = name == table and (index is None or seen + 1 == index)
                if name == table:
                    seen += 1
                if inside:
                    start = number
                continue
            if inside and key and re.match(rf'^\s*"?{re.escape(key)}"?\s*=', text):
                return number
        return start
