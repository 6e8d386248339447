"""How many workers ``lumen-sniff replay`` picks by itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lumen_sniff.cli import replay as cli


@pytest.mark.parametrize(
    ("size", "cpus", "load", "jobs"),
    [
        (1 << 20, 8, 0.0, 1),  # small captures are not worth a fork
        (64 << 20, 2, 0.1, 2),
        (64 << 20, 2, 1.6, 1),  # the other core is taken
        (64 << 20, 2, 3.5, 1),
        (64 << 20, 8, 5.0, 3),
        (64 << 20, 16, 0.0, 4),  # at most 4
    ],
)
def test_auto_jobs_counts_idle_cpus_for_big_captures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, cpus: int, load: float, jobs: int
) -> None:
    capture = tmp_path / "big.pcap"
    with open(capture, "wb") as f:
        f.truncate(size)  # sparse: costs no disk
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert cli._auto_jobs(capture) == jobs


def test_auto_jobs_of_a_missing_file_is_one(tmp_path: Path) -> None:
    assert cli._auto_jobs(tmp_path / "nope.pcap") == 1
