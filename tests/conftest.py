"""Suite-wide test policy.

eBPF and real-client tests need root and a working BPF stack. Where that is
missing they skip, except under ``CI=true`` or ``make test``
(``LUMEN_REQUIRE_BPF=1``), where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import sys
import threading

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
    pytest.skip(why)  # reached only outside CI=true and LUMEN_REQUIRE_BPF=1


_LEAKED_EXIT: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail, never hang, when a test leaves a non-daemon thread running.

    An unclosed aiosqlite connection (or any non-daemon thread) would keep the
    interpreter alive after the summary, and CI would time out with no reason.
    """
    leaked = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if leaked:
        sys.stderr.write(f"\nleaked non-daemon threads (a resource was not closed): {leaked}\n")
        _LEAKED_EXIT.append(int(exitstatus) or 1)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _LEAKED_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_LEAKED_EXIT[0])
