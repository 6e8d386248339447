"""A blocked pid stays a target only while it is the process that was blocked."""

from __future__ import annotations

import os
import subprocess
import sys

from lumen_sniff.budgets.liveness import Births, start_time


def test_start_time_of_a_live_and_a_gone_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        born = start_time(proc.pid)
        assert born is not None and born > 0
        assert start_time(proc.pid) == born  # stable while it runs
        assert start_time(os.getpid()) is not None
        assert start_time(os.getpid()) != born or os.getpid() == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert start_time(proc.pid) is None  # reaped: no /proc entry


def test_an_exited_process_drops_out_and_its_note_stays() -> None:
    births = Births()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    births.note(live.pid, fresh=True)
    births.note(gone.pid, fresh=True)
    gone.wait()
    try:
        assert births.live({live.pid, gone.pid}) == {live.pid}
        assert not births.same(gone.pid)
    finally:
        live.kill()
        live.wait()
    assert births.live({live.pid}) == set()


def test_a_reused_pid_is_not_the_noted_process() -> None:
    births = Births()
    me = os.getpid()
    births._born[me] = (start_time(me) or 0) + 1  # as if noted for an earlier process
    assert not births.same(me)  # same pid, another start time: a reuse
    births.note(me)  # a plain note keeps the old one: the reuse stays apart
    assert not births.same(me)
    births.note(me, fresh=True)  # an event just came from it: it is the process now
    assert births.same(me)
