"""``lumen-sniff replay`` on recorded fixtures and on hand-made captures.

The recorded fixtures (tests/support/make_pcaps.py) were made by real clients
against the stand-in; each replayed event must carry exactly the usage the
client itself reported, and match expected.json field for field.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lumen_sniff.capture.pcap.pcapfile import CaptureFile
from lumen_sniff.capture.tcp.reassembler import TcpReassembler
from lumen_sniff.capture.tcp.segments import parse_frame
from lumen_sniff.cli.replay import replay
from lumen_sniff.model import Direction
from tests.conftest import require_or_skip
from tests.support.make_pcaps import Conversation, frame, write_pcap, write_pcapng

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pcap"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                "reasoning_tokens")  # fmt: skip


def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner(mix_stderr=False).invoke(replay, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.stderr


def needs_tshark() -> None:
    require_or_skip(shutil.which("tshark") is not None, "tshark is not installed")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_fixture_gives_the_usage_the_clients_saw(name: str) -> None:
    spec = EXPECTED[name]
    args = [str(FIXTURES / name), "--json"]
    if spec["keylog"]:
        needs_tshark()
        args += ["--keylog", str(FIXTURES / spec["keylog"])]
    code, events, stderr = run(*args)
    assert (code, stderr) == (0, "")
    assert events == spec["events"]
    assert len(events) == len(spec["clients"])
    for event, client in zip(events, spec["clients"], strict=True):
        assert {k: event[k] for k in USAGE_FIELDS} == client["usage"], client["scenario"]
        assert (event["model"], event["status"], event["stream"]) == (
            client["model"], client["status"], client["stream"]
        )  # fmt: skip
        assert event["usage_source"] == "reported" and event["complete"] is True


def test_tls_without_key_log_reports_nothing() -> None:
    code, events, stderr = run(str(FIXTURES / "tls.pcapng"), "--json")
    assert (code, events, stderr) == (0, [], "")


def test_missing_keys_are_reported_per_session(tmp_path: Path) -> None:
    needs_tshark()
    spec = EXPECTED["tls.pcapng"]
    lines = (FIXTURES / spec["keylog"]).read_text().splitlines()
    randoms = list(dict.fromkeys(line.split()[1] for line in lines if line[:1].isalpha()))
    dropped = randoms[0]
    keylog = tmp_path / "partial.keys"
    keylog.write_text("\n".join(line for line in lines if dropped not in line) + "\n")
    code, events, stderr = run(str(FIXTURES / "tls.pcapng"), "--json", "--keylog", str(keylog))
    assert code == 0
    assert events == spec["events"][1:]
    warnings = stderr.strip().splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: TLS session 0 (127.0.0.1:")
    assert f"client random {dropped}): no usable keys in the key log" in warnings[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read key log: No such file or directory"),
     (b"not a key log\n", "not a TLS key log")],
)  # fmt: skip
def test_unusable_key_log_fails(tmp_path: Path, content: bytes | None, message: str) -> None:
    keylog = tmp_path / "k.log"
    if content is not None:
        keylog.write_bytes(content)
    code, events, stderr = run(str(FIXTURES / "tls.pcapng"), "--keylog", str(keylog))
    assert code == 1 and events == []
    assert stderr.startswith("error: ") and message in stderr


def test_truncated_capture_prints_what_came_before_and_fails(tmp_path: Path) -> None:
    data = (FIXTURES / "plain.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    code, events, stderr = run(str(cut), "--json")
    assert code == 1
    expected = EXPECTED["plain.pcap"]["events"]
    complete = [e for e in events if e["complete"]]
    assert 1 <= len(complete) < len(expected)
    assert complete == expected[: len(complete)]
    assert f"error: {cut}: damaged pcap after " in stderr
    assert f"({len(events)} events before the damage)" in stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a pcap or pcapng capture (empty file)"),
     (b"{\"json\": true}", "not a pcap or pcapng capture (file starts with 7b226a73)")],
)  # fmt: skip
def test_wrong_file_type_fails_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    code, events, stderr = run(str(path))
    assert (code, events) == (1, [])
    assert stderr == f"error: {path}: {message}\n"


def test_summary_table(tmp_path: Path) -> None:
    result = CliRunner(mix_stderr=False).invoke(replay, [str(FIXTURES / "plain.pcap")])
    assert result.exit_code == 0
    assert "plain.pcap: 5 LLM calls" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "llama3.2" in line]
    assert len(rows) == 1 and "│     3 │" in rows[0]
    assert "5 TCP flows, 0 bytes lost in gaps" in result.stdout.replace("\n", " ")


def test_db_stores_the_events(tmp_path: Path) -> None:
    db = tmp_path / "state" / "lumen.db"
    code, events, _ = run(str(FIXTURES / "plain.pcap"), "--json", "--db", str(db))
    assert code == 0 and len(events) == 5
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    assert count == 5


# ------------------------------------------------------------- hand-made pcaps


def _first_exchange() -> tuple[bytes, bytes]:
    """Request and response bytes of the first call in plain.pcap (ollama_chat)."""
    reasm = TcpReassembler()
    data: dict[Direction, bytes] = {Direction.EGRESS: b"", Direction.INGRESS: b""}
    with CaptureFile(FIXTURES / "plain.pcap") as capture:
        for f in capture:
            seg = parse_frame(f.linktype, f.data)
            assert not isinstance(seg, str)
            for chunk in reasm.feed(seg, f.ts_ns):
                if chunk.conn.handle == 1:
                    data[chunk.direction] += chunk.data
    return data[Direction.EGRESS], data[Direction.INGRESS]


REQUEST, RESPONSE = _first_exchange()
OLLAMA = EXPECTED["plain.pcap"]["events"][0]


def _packets(conv: Conversation, *, handshake: bool = True, mss: int = 97) -> list[bytes]:
    head = conv.handshake() if handshake else []
    return head + conv.send("c", REQUEST, mss) + conv.send("s", RESPONSE, mss) + conv.fin(
        "c") + conv.fin("s")  # fmt: skip


def _replay_packets(tmp_path: Path, packets: list[bytes], linktype: int = 1) -> dict[str, Any]:
    path = tmp_path / "made.pcap"
    write_pcap(path, linktype, [(1_700_000_000 * 10**9 + i * 1000, frame(linktype, p))
                                for i, p in enumerate(packets)])  # fmt: skip
    code, events, stderr = run(str(path), "--json")
    assert (code, stderr, len(events)) == (0, "", 1)
    event = events[0]
    assert {k: event[k] for k in USAGE_FIELDS} == {k: OLLAMA[k] for k in USAGE_FIELDS}
    assert (event["provider"], event["model"], event["complete"]) == ("ollama", "llama3.2", True)
    return event


@pytest.mark.parametrize("linktype", [1, 0, 108, 113, 276, 101])
def test_link_types(tmp_path: Path, linktype: int) -> None:
    _replay_packets(tmp_path, _packets(Conversation()), linktype)


def test_ipv6(tmp_path: Path) -> None:
    _replay_packets(tmp_path, _packets(Conversation(("fd00::1", 50000), ("fd00::2", 11434),
                                                    v6=True)))  # fmt: skip


def test_reordered_retransmitted_overlapping(tmp_path: Path) -> None:
    rnd = random.Random(7)
    conv = Conversation(client_isn=2**32 - 300)  # the request wraps the sequence space
    packets = conv.handshake()
    # Reordering happens within a direction: a server answers a whole request.
    for side, data in (("c", REQUEST), ("s", RESPONSE)):
        start = conv.seq[side]
        segments = conv.send(side, data, 97)
        segments += rnd.sample(segments, 3)  # retransmissions
        # An overlapping resend: the first 150 bytes re-cut as one segment.
        segments.append(conv.packet(side, 0x18, data[:150], seq=start))
        rnd.shuffle(segments)
        packets += segments
    _replay_packets(tmp_path, packets + conv.fin("c") + conv.fin("s"))


def test_capture_started_mid_connection(tmp_path: Path) -> None:
    _replay_packets(tmp_path, _packets(Conversation(), handshake=False))


def test_pcapng_input(tmp_path: Path) -> None:
    path = tmp_path / "made.pcapng"
    packets = _packets(Conversation())
    write_pcapng(path, [113], [(0, i * 1000, frame(113, p)) for i, p in enumerate(packets)])
    code, events, _ = run(str(path), "--json")
    assert code == 0
    assert [(e["model"], e["output_tokens"]) for e in events] == [
        ("llama3.2", OLLAMA["output_tokens"])
    ]


def test_parallel_jobs_give_the_same_events() -> None:
    code, events, stderr = run(str(FIXTURES / "plain.pcap"), "--json", "--jobs", "3")
    assert (code, stderr) == (0, "")
    assert events == EXPECTED["plain.pcap"]["events"]
