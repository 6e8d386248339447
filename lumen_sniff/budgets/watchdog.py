"""The pause watchdog: a tiny separate process that guarantees SIGCONT after a crash.

The daemon never stops a process itself. It starts this watchdog once (in its
own session, so a terminal's Ctrl-C does not reach it) and writes to its stdin,
one line per command: ``stop PID`` or ``cont PID``. The watchdog opens a pidfd
for each stopped process (so a recycled pid is never signalled) and sends the
signals through it. Only the daemon holds the pipe's write end, so when the
daemon exits for any reason, ``kill -9`` included, the watchdog reads EOF,
sends SIGCONT to every process it stopped, and exits. SIGTERM, SIGINT and SIGHUP
do the same (``systemctl stop`` signals the whole unit). Only a SIGKILL of the
watchdog itself can leave a process stopped; ``kill -CONT`` then continues it.

Runs as ``python -m lumen_sniff.budgets.watchdog``; it imports nothing of
lumen-sniff, so it starts in milliseconds and cannot fail on a missing library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

__all__ = ["main"]


def _continue_all(stopped: dict[int, int]) -> None:
    for pid, fd in list(stopped.items()):
        with contextlib.suppress(OSError):  # already gone
            signal.pidfd_send_signal(fd, signal.SIGCONT)
        os.close(fd)
        del stopped[pid]


def main() -> int:
    """Serve stop/cont commands from stdin until EOF, then continue everyone."""
    stopped: dict[int, int] = {}

    def bye(signum: int, frame: object) -> None:
        _continue_all(stopped)
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, bye)
    for line in sys.stdin:
        verb, _, arg = line.strip().partition(" ")
        if not arg.isdigit():
            continue
        pid = int(arg)
        try:
            if verb == "stop" and pid not in stopped:
                fd = os.pidfd_open(pid)
                signal.pidfd_send_signal(fd, signal.SIGSTOP)
                stopped[pid] = fd
            elif verb == "cont":
                fd = stopped.pop(pid, -1)
                if fd >= 0:
                    signal.pidfd_send_signal(fd, signal.SIGCONT)
                    os.close(fd)
                else:
                    os.kill(pid, signal.SIGCONT)
            status = "ok"
        except OSError as exc:
            status = f"error {exc.strerror}"
        sys.stdout.write(f"{status} {verb} {pid}\n")
        sys.stdout.flush()
    _continue_all(stopped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
