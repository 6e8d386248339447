"""Bounded label values and the fleet labels every per-call metric carries.

Prometheus (``/metrics``) and the OTLP metrics share these: a fleet sums
series across hosts, so each host must label them the same way, and a label
fed from traffic (model, process, tenant…) must never grow without bound.

Adding a fleet label is one row in :data:`FLEET_LABELS`.
"""

from __future__ import annotations

from collections.abc import Callable

from lumen_sniff.model import UsageEvent

__all__ = ["FLEET_LABELS", "Bounded", "fleet_values"]

FLEET_LABELS: tuple[tuple[str, Callable[[UsageEvent], object]], ...] = (
    ("service", lambda e: e.service),
    ("tenant", lambda e: e.tenant),
)
"""(label, getter): who the call was for, beyond provider/model/process."""


class Bounded:
    """Maps a label's values to themselves for the first N seen, then to ``other``.

    First-seen rather than top-N keeps a series' meaning stable for the
    daemon's life, and the busy values are, in practice, the ones seen first.
    A missing value is ``unknown``.
    """

    def __init__(self, max_values: int) -> None:
        self._max = max_values
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        text = "unknown" if value is None or value == "" else str(value)
        if text in self._seen:
            return text
        if len(self._seen) < self._max:
            self._seen.add(text)
            return text
        return "other"


def fleet_values(event: UsageEvent, bounds: tuple[Bounded, ...]) -> tuple[str, ...]:
    """The event's :data:`FLEET_LABELS` values, each through its bound."""
    return tuple(
        bound(getter(event)) for (_, getter), bound in zip(FLEET_LABELS, bounds, strict=True)
    )
