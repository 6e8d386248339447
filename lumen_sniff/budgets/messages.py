"""Alert payloads: the generic JSON object and the Slack-compatible ``{"text": ...}``. Pure.

Neither holds prompt text or keys: only the budget, its scope, money, the
costliest models and services of the period, and the alert's own line.
"""

from __future__ import annotations

from typing import Any

from lumen_sniff.budgets.model import Alert, BudgetStatus
from lumen_sniff.serialize import iso_from_ns

__all__ = ["alert_payload", "slack_body", "slot_of"]


def slot_of(alert: Alert) -> str:
    """What "once per period" is counted on: ``threshold:80``, ``forecast``…"""
    return f"threshold:{alert.threshold}" if alert.threshold is not None else alert.kind


def alert_payload(alert: Alert, status: BudgetStatus | None) -> dict[str, Any]:
    """The generic JSON payload of an alert (status: the budget's, when it still exists)."""
    out: dict[str, Any] = {
        "key": alert.key,
        "kind": alert.kind,
        "budget": alert.budget,
        "threshold": alert.threshold,
        "message": alert.message,
        "at": iso_from_ns(alert.at_ns),
    }
    if status is not None:
        b = status.budget
        out.update(
            scope=b.scope.value,
            match=b.match,
            period=b.period.text,
            action=b.action.value,
            spent_usd=float(status.spent_usd),
            limit_usd=float(b.limit_usd),
            percent=round(status.percent, 2),
            requests=status.requests,
            unpriced_requests=status.unpriced_requests,
            top_models=[{"model": m, "cost_usd": float(c)} for m, c in status.top_models],
            top_services=[{"service": s, "cost_usd": float(c)} for s, c in status.top_services],
        )
    return out


def slack_body(payload: dict[str, Any]) -> dict[str, str]:
    """A Slack incoming-webhook body: one readable message."""
    lines = [f":rotating_light: *lumen-sniff*: {payload['message']}"]
    if "spent_usd" in payload:
        scope = payload["scope"] + (f" = {payload['match']}" if payload["match"] else "")
        lines.append(
            f"budget *{payload['budget']}* ({scope}, {payload['period']}): "
            f"{_usd(payload['spent_usd'])} of {_usd(payload['limit_usd'])} "
            f"({payload['percent']:.0f}%)"
        )
        for label, key, field in (
            ("models", "top_models", "model"),
            ("services", "top_services", "service"),
        ):
            top = ", ".join(f"{t[field] or '?'} {_usd(t['cost_usd'])}" for t in payload[key])
            if top:
                lines.append(f"top {label}: {top}")
    return {"text": "\n".join(lines)}


def _usd(value: float) -> str:
    # Cents for real money, every significant digit for tiny test budgets.
    if value >= 1:
        return f"${value:,.2f}"
    return "$" + (f"{value:.8f}".rstrip("0").rstrip(".") or "0")
