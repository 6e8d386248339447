"""How many workers ``lumen-sniff replay`` picks by itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lumen_sniff.cli import replay as cli


@pytest.mark.parametrize(
    ("size", "cpus", "jobs"),
    [
        (1 << 20, 8, 1),  # small captures are not worth a fork
        (64 << 20, 1, 1),
        (64 << 20, 2, 2),
        (64 << 20, 16, 4),  # at most 4
    ],
)
def test_auto_jobs_is_one_per_cpu_for_big_captures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, cpus: int, jobs: int
) -> None:
    capture = tmp_path / "big.pcap"
    with open(capture, "wb") as f:
        f.truncate(size)  # sparse: costs no disk
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert cli._auto_jobs(capture) == jobs


def test_auto_jobs_of_a_missing_file_is_one(tmp_path: Path) -> None:
    assert cli._auto_jobs(tmp_path / "nope.pcap") == 1
