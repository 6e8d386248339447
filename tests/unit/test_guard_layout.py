"""The connect guard's C keys and their ctypes mirror; /proc parsing; alert bodies."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

from lumen_sniff.budgets.endpoints import llm_peers, parse_host, tcp_conns
from lumen_sniff.budgets.enforce import _ATTACH, GUARD_SOURCE, Ep4, Ep6, GuardComm, cgroup2_root
from lumen_sniff.budgets.messages import slack_body

C = GUARD_SOURCE.read_text()


def _c_fields(struct: str) -> list[str]:
    body = re.search(rf"struct {struct} {{(.*?)}};", C, re.S)
    assert body, struct
    return re.findall(r"(\w+)(?:\[\d+\])?;", body.group(1))


def test_keys_match_the_c_structs() -> None:
    assert [f[0] for f in Ep4._fields_] == _c_fields("guard_ep4")
    assert [f[0] for f in Ep6._fields_] == _c_fields("guard_ep6")
    assert [f[0] for f in GuardComm._fields_] == _c_fields("guard_comm")
    assert (ctypes.sizeof(Ep4), ctypes.sizeof(Ep6), ctypes.sizeof(GuardComm)) == (8, 20, 16)
    for fn in _ATTACH:
        assert re.search(rf"^int {fn}\(struct bpf_sock_addr \*ctx\)", C, re.M), fn


def test_cgroup2_root_comes_from_mounts() -> None:
    mounts = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    assert cgroup2_root(mounts) == Path("/sys/fs/cgroup/unified")


def test_parse_host() -> None:
    assert parse_host("api.openai.com") == ("api.openai.com", None)
    assert parse_host("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert parse_host("[::1]:443") == ("::1", 443)
    assert parse_host("[::1]") == ("::1", None)


def _fake_proc(tmp_path: Path) -> Path:
    base = tmp_path / "4242"
    (base / "fd").mkdir(parents=True)
    (base / "net").mkdir()
    for fd, inode in (("3", "1001"), ("4", "1002"), ("5", "1003")):
        (base / "fd" / fd).symlink_to(f"socket:[{inode}]")
    head = "  sl local_address rem_address st queues tr tm->when retrnsmt uid timeout inode\n"
    (base / "net" / "tcp").write_text(
        head
        # 127.0.0.1:40000 → 127.0.0.1:8443 established (ours), and a listener
        + "   0: 0100007F:9C40 0100007F:20FB 01 00000000:00000000 00:00000000 00000000 0 0 1001\n"
        + "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1002\n"
        # another process's socket with the same peer (not ours: inode 9999)
        + "   2: 0100007F:9C41 0100007F:20FB 01 00000000:00000000 00:00000000 00000000 0 0 9999\n"
    )
    (base / "net" / "tcp6").write_text(
        head
        # ::1:40001 → ::1:443
        + "   0: 00000000000000000000000001000000:9C41 00000000000000000000000001000000:01BB 01 "
        "00000000:00000000 00:00000000 00000000 0 0 1003\n"
    )
    return tmp_path


def test_tcp_conns_and_llm_peers_from_proc(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    conns = {(c.local, c.remote) for c in tcp_conns(4242, proc)}
    assert conns == {(("127.0.0.1", 40000), ("127.0.0.1", 8443)), (("::1", 40001), ("::1", 443))}
    assert llm_peers(4242, "127.0.0.1:8443", proc) == {("127.0.0.1", 8443)}
    assert llm_peers(4242, "127.0.0.1", proc) == {("127.0.0.1", 8443)}
    assert llm_peers(4242, "[::1]", proc) == {("::1", 443)}
    assert tcp_conns(4243, proc) == []


def test_slack_body_is_readable() -> None:
    payload = {
        "message": "budget b (global) reached 80%",
        "budget": "b",
        "scope": "global",
        "match": "",
        "period": "day",
        "spent_usd": 8.5,
        "limit_usd": 10.0,
        "percent": 85.0,
        "top_models": [{"model": "gpt-4o", "cost_usd": 8.0}],
        "top_services": [{"service": "agent", "cost_usd": 0.00005}],
    }
    text = slack_body(payload)["text"]
    assert "budget *b* (global, day): $8.50 of $10.00 (85%)" in text
    assert "top models: gpt-4o $8.00" in text and "top services: agent $0.00005" in text


def test_allowlist_names_and_networks_are_never_learned(tmp_path: Path) -> None:
    from lumen_sniff.budgets.enforcer import Enforcer
    from lumen_sniff.budgets.settings import BudgetSettings
    from lumen_sniff.model import UsageEvent, UsageSource

    enforcer = Enforcer(BudgetSettings(allowlist=("127.0.0.0/8", "gateway.internal")))
    enforcer.error = None  # as if the guard had loaded; nothing here touches it

    def event(host: str) -> UsageEvent:
        return UsageEvent(
            id="x",
            started_at="",
            started_ns=0,
            provider="openai",
            api="chat",
            model=None,
            stream=False,
            status=200,
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            cost_usd=None,
            usage_source=UsageSource.NONE,
            pid=4242,
            process="agent",
            duration_ms=None,
            ttft_ms=None,
            api_key_id=None,
            tenant=None,
            host=host,
        )

    todo = enforcer.learn(
        [event("gateway.internal:8443"), event("127.0.0.1:8443"), event("[::1]:443")]
    )
    assert todo == [(4242, "127.0.0.1:8443"), (4242, "[::1]:443")]
    assert enforcer.learn([event("127.0.0.1:8443")]) == []  # looked up recently
    proc = _fake_proc(tmp_path)
    from lumen_sniff.budgets import endpoints

    found = {p for pid, host in todo for p in endpoints.llm_peers(pid, host, proc)}
    assert found == {("127.0.0.1", 8443), ("::1", 443)}
    assert {p for p in found if not enforcer._allowed_addr(p[0])} == {("::1", 443)}
