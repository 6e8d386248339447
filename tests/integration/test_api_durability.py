"""``kill -9`` of a process writing as fast as it can leaves a sound database.

A child process submits numbered events without pause and prints, after each
commit, how many events are durably stored. The parent kills it with SIGKILL
at a random moment (a transaction is almost always under way), then checks
that the database opens, passes ``PRAGMA integrity_check``, holds every event
the child reported as committed, and that the rollups still equal the raw sums.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumen_sniff.store import open_store

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, sys
from lumen_sniff.store import open_store
from tests.support.events import T0, make_event

async def main(path, start):
    store = await open_store(path, retention_days=0, batch_max=500, batch_wait_s=0.002)

    class Report:
        def committed(self, events):
            print(store.writer.committed_events + start, flush=True)

        def closed(self):
            pass

    store.writer.add_listener(Report())
    i = start
    while True:
        event = make_event(T0 + i * 1_000_000, id=f"k{i:09d}")
        while not store.writer.submit(event):
            await asyncio.sleep(0.001)
        i += 1
        if i % 200 == 0:
            await asyncio.sleep(0)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def _run_and_kill(db: Path, start: int, at_least: int, rng: random.Random) -> int:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        committed = start
        deadline = time.monotonic() + 60
        try:
            for line in child.stdout:
                committed = int(line)
                if committed >= start + at_least:
                    break
                assert time.monotonic() < deadline, "child too slow"
            else:
                pytest.fail(f"child exited early: {child.stderr.read()}")
            time.sleep(rng.uniform(0.0, 0.05))  # land somewhere inside the next batches
            os.kill(child.pid, signal.SIGKILL)
            # Lines printed before the kill are commits too: read them all.
            for line in child.stdout:
                committed = int(line)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return committed


def _check(db: Path, committed: int) -> int:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert stored >= committed
        # Ids are numbered in submission (= commit) order: the first `committed`
        # must all be there, each exactly once.
        kept = conn.execute(
            "SELECT COUNT(DISTINCT id) FROM events WHERE id < ?", (f"k{committed:09d}",)
        ).fetchone()[0]
        assert kept == committed
        rolled = conn.execute(
            "SELECT SUM(requests), SUM(input_tokens) FROM rollups WHERE dim = 'total'"
        ).fetchone()
        assert rolled == (stored, 100 * stored)
    return int(stored)


@pytest.mark.slow
def test_kill_9_mid_burst_keeps_every_committed_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    rng = random.Random(1234)
    stored = 0
    for _ in range(3):
        committed = _run_and_kill(db, stored, at_least=10_000, rng=rng)
        stored = _check(db, committed)

    async def reopen() -> int:
        store = await open_store(db, retention_days=0)
        try:
            return (await store.summary()).requests
        finally:
            await store.close()

    assert asyncio.run(reopen()) == stored
