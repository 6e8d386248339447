"""Fixtures most eBPF integration modules share (a module may define its own instead).

Both are module-scoped: each module gets its own stand-in and its own handle on
the process-wide capture (``shared_capture``), as when each module defined them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import Collector, Server, bpf_ready, shared_capture, tls_standin


@pytest.fixture(scope="module")
def collector() -> Collector:
    """The shared eBPF capture (fails under CI, skips elsewhere, when eBPF is not usable)."""
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    return shared_capture()


@pytest.fixture(scope="module")
def standin() -> Iterator[Server]:
    """The provider stand-in over TLS, on an ephemeral port."""
    with tls_standin() as server:
        yield server
