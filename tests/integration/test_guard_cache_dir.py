"""The budgets' connect guard honours ``[capture] bpf_cache_dir`` (real kernel).

It used to compile into the default cache whatever the config said. Loaded with a
cache dir of its own, the guard's compiled object lands there, and a second load
reads it back instead of compiling.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lumen_sniff.budgets.enforcer import Enforcer
from lumen_sniff.budgets.settings import BudgetSettings
from tests.conftest import require_or_skip
from tests.support.bpfcap import bpf_ready

pytestmark = [pytest.mark.bpf]


def _load(cache: Path) -> Enforcer:
    enforcer = Enforcer(BudgetSettings(), cache_dir=cache)
    enforcer.load()
    assert enforcer.error is None, enforcer.error
    return enforcer


def test_guard_compiles_into_the_configured_cache(tmp_path: Path) -> None:
    require_or_skip(*bpf_ready())
    cache = tmp_path / "bpf-cache"
    first = _load(cache)
    try:
        objects = sorted(p.name for p in cache.glob("guard-*.json"))
        assert len(objects) == 1, sorted(p.name for p in cache.iterdir())
    finally:
        first.stop()
    second = _load(cache)
    try:
        assert second.guard.cached
        assert sorted(p.name for p in cache.glob("guard-*.json")) == objects
    finally:
        second.stop()

