"""Start-up reads the kernel's BTF once for every offset it needs, and keeps nothing after."""

from __future__ import annotations

import pytest

from lumen_sniff.capture.bpf import btf
from tests.conftest import require_or_skip

_QUERIES = (
    ("task_struct", ("group_leader", "comm")),
    ("tcp_sock", ("bytes_sent", "bytes_received")),
)


def test_lookups_in_a_block_share_one_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    require_or_skip(btf.VMLINUX_BTF.exists(), "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")
    apart = [btf.member_offsets_bytes(name, members) for name, members in _QUERIES]
    parses: list[int] = []
    real = btf._Types

    def counting(blob: bytes) -> btf._Types:
        parses.append(len(blob))
        return real(blob)

    monkeypatch.setattr(btf, "_Types", counting)
    with btf.parsed_once():
        together = [btf.member_offsets_bytes(name, members) for name, members in _QUERIES]
        with btf.parsed_once():  # nested: still the same parse
            btf.member_offsets_bytes(*_QUERIES[0])
    assert together == apart
    assert len(parses) == 1
    assert btf._shared is None  # the multi-MB index is not kept
    btf.member_offsets_bytes(*_QUERIES[0])
    assert len(parses) == 2  # outside a block: a parse per lookup, as before
    assert all(v > 0 for offsets in apart for v in offsets.values())
