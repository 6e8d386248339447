"""The Go probe table: which BPF functions go at the entry and at the RETs of which Go function.

Data only, checked against ``bpf/lumen.bpf.c`` by ``tests/unit/test_golang_probes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumen_sniff.capture.golang.locate import GO_CLOSE, GO_READ, GO_WRITE

__all__ = ["GO_PROBES", "GoProbe"]


@dataclass(frozen=True, kw_only=True, slots=True)
class GoProbe:
    """One Go function and the BPF functions attached to it."""

    func: str
    """Full Go name of the function."""
    enter: str
    """BPF function attached at its first instruction."""
    ret: str
    """BPF function attached at each of its RET instructions ("" for none)."""


GO_PROBES: tuple[GoProbe, ...] = (
    GoProbe(func=GO_WRITE, enter="lumen_go_enter_write", ret="lumen_go_ret_write"),
    GoProbe(func=GO_READ, enter="lumen_go_enter_read", ret="lumen_go_ret_read"),
    GoProbe(func=GO_CLOSE, enter="lumen_go_enter_close", ret=""),
)
"""Every Go probe; a row whose function a binary lacks is left out for that binary."""
