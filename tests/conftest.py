"""Suite-wide test policy.

eBPF and real-client tests need root and a working BPF stack. Where that is
missing they skip, except under ``CI=true`` or ``make test``
(``LUMEN_REQUIRE_BPF=1``), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["bpf_required", "require_or_skip"]


def bpf_required() -> bool:
    """True when missing eBPF machinery must fail the run instead of skipping."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("LUMEN_REQUIRE_BPF") == "1"


def require_or_skip(ok: bool, why: str) -> None:
    """Fail (CI, make test) or skip (a developer's laptop) when ``ok`` is false."""
    if ok:
        return
    if bpf_required():
        pytest.fail(f"required for this run (CI=true or LUMEN_REQUIRE_BPF=1): {why}")
    pytest.skip(why)
