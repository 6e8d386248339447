"""Prometheus collector of budget state, read at scrape time.

* ``lumen_budget_spent_usd{budget}`` spend in the current window;
* ``lumen_budget_limit_usd{budget}`` the limit;
* ``lumen_budget_state{budget,state}`` 1 for the budget's state, 0 for the others.

Budgets are few and named by the operator, so cardinality is theirs to bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lumen_sniff.budgets.model import BudgetStatus, State

__all__ = ["BudgetCollector"]


class BudgetCollector(Collector):
    """Reads every budget's status at each scrape."""

    def __init__(self, statuses: Callable[[], Sequence[BudgetStatus]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterable[Metric]:
        statuses = self._statuses()
        spent = GaugeMetricFamily(
            "lumen_budget_spent_usd", "Spend in the budget's current window.", labels=["budget"]
        )
        limit = GaugeMetricFamily("lumen_budget_limit_usd", "Budget limit.", labels=["budget"])
        state = GaugeMetricFamily(
            "lumen_budget_state", "1 for the budget's current state.", labels=["budget", "state"]
        )
        for s in statuses:
            name = s.budget.name
            spent.add_metric([name], float(s.spent_usd))
            limit.add_metric([name], float(s.budget.limit_usd))
            for candidate in State:
                state.add_metric([name, candidate.value], 1.0 if s.state is candidate else 0.0)
        yield spent
        yield limit
        yield state
