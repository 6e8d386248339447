"""Committed exchange fixtures match a fresh recording (``make fixtures``).

The stand-ins listen on fixed ports, since Host and ``:authority`` are part of the
recorded bytes; recordings on one machine take turns on a lock (see
:func:`tests.support.make_fixtures.record_all`), so this is an integration test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import EXCHANGES_DIR, semantic_view
from tests.support.make_fixtures import record_all


def _server_side(doc: dict[str, Any]) -> dict[str, Any]:
    """The semantic view without the client's identity and request bytes."""
    view = semantic_view(doc)
    del view["client"]
    for conn in view["connections"]:
        conn.pop("egress", None)
    return view


@pytest.mark.slow
def test_regenerated_fixtures_do_not_drift(tmp_path: Path) -> None:
    record_all(tmp_path)
    for committed in sorted(EXCHANGES_DIR.glob("*.json")):
        fresh = json.loads((tmp_path / committed.name).read_text())
        old = json.loads(committed.read_text())
        if fresh["client"] != old["client"]:
            # node and curl come from the system, not from pyproject.toml: another
            # version sends other request bytes. The stand-in's answer and the usage
            # the client reported must still be what was committed.
            assert _server_side(fresh) == _server_side(old), f"{committed.name} drifted"
            continue
        assert semantic_view(fresh) == semantic_view(old), f"{committed.name} drifted"
        if old["http_version"] == "1.1":
            # Plaintext HTTP/1.1 exchanges regenerate byte for byte, timestamps included.
            assert fresh == old, f"{committed.name} is not byte-identical"
