"""UnseenTracker and blind_reason: pure judgement of seen/unseen TLS connections."""

from __future__ import annotations

import pytest

from lumen_sniff.capture.bpf.unhookable import Unhookable
from lumen_sniff.capture.unseen import (
    FILTERED,
    HOOKED_BUT_UNSEEN,
    NOTHING_HOOKABLE,
    UnseenTracker,
    blind_reason,
)
from lumen_sniff.model import ProcessInfo
from tests.unit.test_tlshello import real_client_hello

S = 1_000_000_000
JAVA = ProcessInfo(pid=10, comm="java", exe="/usr/lib/jvm/java-17/bin/java", service="Probe")
PY = ProcessInfo(pid=20, comm="python3", exe="/usr/bin/python3.11", service="app.worker")


def _hello(t: UnseenTracker, sock: int, proc: ProcessInfo, ts: int, reason: str = "r") -> None:
    t.hello(
        sock=sock, ts_ns=ts, wall_ns=ts + 1000 * S, host="api.openai.com", provider="openai",
        process=proc, reason=reason,
    )  # fmt: skip


def test_host_of_keeps_llm_hosts_only() -> None:
    t = UnseenTracker({"llm.internal": "openai"})
    assert t.host_of(real_client_hello("api.anthropic.com")) == ("api.anthropic.com", "anthropic")
    assert t.host_of(real_client_hello("llm.internal")) == ("llm.internal", "openai")
    assert t.host_of(real_client_hello("example.org")) is None
    assert t.host_of(real_client_hello(None)) is None
    assert (t.counters["other_hosts"], t.counters["no_sni"]) == (1, 1)


def test_plaintext_after_the_hello_means_seen() -> None:
    t = UnseenTracker()
    _hello(t, 1, PY, ts=100 * S)
    t.plaintext(PY.pid, 100 * S + 5)
    t.close(sock=1, ts_ns=101 * S, wall_ns=0, sent=900, received=4000)
    t.judge(101 * S + 10)  # within the close grace: not judged yet
    assert t.counters["seen"] == 0
    t.judge(102 * S)
    assert (t.counters["seen"], t.counters["unseen"], t.groups) == (1, 0, {})


def test_no_plaintext_means_unseen_with_bytes_and_times() -> None:
    t = UnseenTracker()
    t.plaintext(JAVA.pid, 50 * S)  # earlier plaintext does not count
    _hello(t, 1, JAVA, ts=100 * S, reason="Java JSSE not supported")
    _hello(t, 2, JAVA, ts=103 * S, reason="Java JSSE not supported")
    t.close(sock=1, ts_ns=104 * S, wall_ns=0, sent=900, received=4000)
    t.judge(106 * S)  # 1 closed: judged; 2 open for 3 s: not yet
    assert t.counters["unseen"] == 1
    t.judge(108 * S)  # 2 open for 5 s: judged, bytes come with its close
    t.close(sock=2, ts_ns=109 * S, wall_ns=1109 * S, sent=100, received=50)
    (spot,) = t.groups.values()
    assert (spot.process, spot.service, spot.exe, spot.host) == (
        "java",
        "Probe",
        JAVA.exe,
        "api.openai.com",
    )
    assert (spot.connections, spot.bytes_sent, spot.bytes_received) == (2, 1000, 4050)
    assert (spot.first_seen_ns, spot.last_seen_ns) == (1100 * S, 1109 * S)
    assert spot.reason == "Java JSSE not supported" and spot.pids == {10}


def test_rows_and_pending_are_bounded() -> None:
    t = UnseenTracker(max_pending=2, max_groups=1)
    for sock in range(3):
        _hello(t, sock, ProcessInfo(pid=sock, comm=f"p{sock}"), ts=S)
    t.judge(10 * S)
    assert len(t.groups) == 1
    assert t.counters["dropped"] == 2  # one over max_pending, one over max_groups


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"filtered": True, "registered": "Go binary"}, FILTERED),
        (
            {"registered": "static BoringSSL, functions not located"},
            "static BoringSSL, functions not located",
        ),
        ({"exe": "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"}, "Java JSSE not supported"),
        ({"mapped": ["/usr/lib/jvm/x/lib/server/libjvm.so"]}, "Java JSSE not supported"),
        ({"mapped": ["/usr/lib/x86_64-linux-gnu/libnss3.so"]}, "NSS not hooked"),
        # GnuTLS is hooked now: a GnuTLS client that goes unseen says so.
        (
            {"mapped": ["/usr/lib/x86_64-linux-gnu/libgnutls.so.30"], "hooked": True},
            HOOKED_BUT_UNSEEN,
        ),
        ({"hooked": True}, HOOKED_BUT_UNSEEN),
        ({}, NOTHING_HOOKABLE),
    ],
)
def test_blind_reason_order(kwargs: dict[str, object], expected: str) -> None:
    args: dict[str, object] = {
        "registered": None, "exe": "/usr/bin/x", "mapped": [], "filtered": False, "hooked": False,
    }  # fmt: skip
    args.update(kwargs)
    assert blind_reason(**args).startswith(expected)  # type: ignore[arg-type]


def test_unhookable_registry() -> None:
    reg = Unhookable(max_entries=2)
    reg.report(("fd:01", 7), "/usr/bin/claude", "static BoringSSL, functions not located")
    reg.report(("fd:01", 8), "/srv/go-app", "Go binary too old")
    reg.report(("fd:01", 9), "/x", "dropped: over the bound")
    assert reg.reason([("fd:01", 1), ("fd:01", 8), ("fd:01", 7)]) == "Go binary too old"
    assert reg.reason([("fd:01", 9)]) is None
    reg.forget(("fd:01", 8))
    assert reg.entries() == [
        {"path": "/usr/bin/claude", "reason": "static BoringSSL, functions not located"}
    ]
