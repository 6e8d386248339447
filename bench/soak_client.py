"""One paced load client for ``bench/soak.py``: real Python ``ssl`` calls at a steady rate.

Run as ``python bench/soak_client.py BASE_URL CA RATE SECONDS [COMM]``. It makes ``RATE``
calls per second for ``SECONDS`` seconds, rotating the same four calls as
``bench/daemon_client.py`` (OpenAI chat and Anthropic messages, plain and
streamed) over keep-alive HTTP/1.1 connections (a new one every 50 calls), and
prints one JSON line of running totals every second and a last one with
``"done": true``. A failed call never ends the client: it is counted by kind
(``http_503``, ``ConnectionResetError``…) and the next call opens a new
connection, so an hour's soak survives a stand-in hiccup. Calls are paced on an
absolute schedule; when the client falls more than a second behind (the machine
is busy) it skips ahead instead of bursting, and counts the skipped slots as
``late``. With ``COMM`` the process first renames itself (``PR_SET_NAME``), so a
daemon started with ``--comm COMM`` captures the soak's clients and skips the
rest of a shared machine.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import ssl
import sys
import time
from urllib.parse import urlsplit

from daemon_client import _body  # the same four calls as bench/daemon.py's clients

_CALLS_PER_CONN = 50
_REPORT_S = 1.0
_MAX_BEHIND_S = 1.0


class _Totals:
    def __init__(self) -> None:
        self.made = 0  # calls answered 200 and read to the end
        self.errors: dict[str, int] = {}
        self.late = 0

    def line(self, *, done: bool = False) -> str:
        return json.dumps({"made": self.made, "errors": self.errors, "late": self.late,
                           "done": done})


def _call(conn: http.client.HTTPSConnection, kind: int) -> int:
    path, headers, body = _body(kind)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _rename(comm: str) -> None:
    """Set this process's comm (the leader's, which the daemon's filter reads)."""
    pr_set_name = 15
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_name, comm.encode()[:15], 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_NAME, {comm!r})")


def main(argv: list[str]) -> int:
    base, ca, rate, seconds = argv[0], argv[1], float(argv[2]), float(argv[3])
    if len(argv) > 4:
        _rename(argv[4])  # before the first TLS call: the daemon judges that one
    url = urlsplit(base)
    ctx = ssl.create_default_context(cafile=ca)
    totals = _Totals()
    start = time.monotonic()
    deadline = start + seconds
    next_report = start + _REPORT_S
    conn: http.client.HTTPSConnection | None = None
    on_conn = slot = kind = 0
    while True:
        due = start + slot / rate
        now = time.monotonic()
        if now - due > _MAX_BEHIND_S:
            skipped = int((now - due) * rate)
            totals.late += skipped
            slot += skipped
            due = start + slot / rate
        if due >= deadline:
            break
        if due > now:
            time.sleep(due - now)
        slot += 1
        if conn is None or on_conn >= _CALLS_PER_CONN:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=ctx,
                                               timeout=30)
            on_conn = 0
        try:
            status = _call(conn, kind)
        except (OSError, http.client.HTTPException) as exc:
            totals.errors[type(exc).__name__] = totals.errors.get(type(exc).__name__, 0) + 1
            conn.close()
            conn = None
        else:
            on_conn += 1
            if status == 200:
                totals.made += 1
            else:
                totals.errors[f"http_{status}"] = totals.errors.get(f"http_{status}", 0) + 1
        kind = (kind + 1) % 4
        if time.monotonic() >= next_report:
            print(totals.line(), flush=True)
            next_report += _REPORT_S
    if conn is not None:
        conn.close()
    print(totals.line(done=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
