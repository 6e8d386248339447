"""Budgets: limits on LLM spend per scope, their live state, alerts and enforcement.

Pure core (no I/O, injected clock): :mod:`.model`, :mod:`.period`,
:mod:`.window`, :mod:`.evaluator`, :mod:`.settings`, :mod:`.messages`.
Edges (I/O): :mod:`.enforce` (cgroup BPF program, socket destruction),
:mod:`.endpoints` (/proc lookups), :mod:`.watchdog` (SIGCONT after a crash),
:mod:`.outbox` (alert delivery), :mod:`.service` (wires them into the daemon).
"""

from __future__ import annotations
