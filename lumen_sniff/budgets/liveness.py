"""Is a pid still the process it was? Blocks and pauses target pids, and pids are reused.

A pid is noted with its start time (``/proc/PID/stat`` field 22, in clock ticks
since boot) when the enforcer first hears of it; later the pid counts as the
same process only while that start time still matches. An exited process, or a
new one that got its pid, is then dropped from every target set, so a block
never lands on an unrelated process that happens to reuse a blocked pid.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Births", "start_time"]

_MAX = 65536
"""Most pids remembered; past it the oldest notes are forgotten (re-noted on use)."""


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and ')': fields after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


class Births:
    """pid → start time when first noted; :meth:`same` says if it is still that process."""

    def __init__(self) -> None:
        self._born: dict[int, int] = {}

    def note(self, pid: int, *, fresh: bool = False) -> None:
        """Remember the pid's current process.

        ``fresh``: the caller knows the pid is live right now (an event just came
        from it), so a reused pid's new process replaces the old note. Otherwise a
        pid already noted keeps its note: that is what tells a reuse apart.
        """
        if pid in self._born and not fresh:
            return
        born = start_time(pid)
        if born is None:
            return
        if pid not in self._born and len(self._born) >= _MAX:
            del self._born[next(iter(self._born))]
        self._born[pid] = born

    def same(self, pid: int) -> bool:
        """Still the process noted for this pid (noting it now if it was not)."""
        self.note(pid)
        born = self._born.get(pid)
        return born is not None and start_time(pid) == born

    def live(self, pids: Iterable[int]) -> set[int]:
        """The pids that are still their noted process (the notes of the others stay,
        so a reuse of their pid is not mistaken for them)."""
        return {pid for pid in pids if self.same(pid)}
