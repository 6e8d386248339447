"""``lumen-sniff replay`` reads a pipe (``tcpdump -w - | lumen-sniff replay /dev/stdin``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lumen_sniff.cli.replay import replay

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pcap"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())


def _through_fifo(tmp_path: Path, data: bytes, *args: str) -> tuple[int, list[Any], str]:
    fifo = tmp_path / "capture"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    try:
        result = CliRunner(mix_stderr=False).invoke(replay, [str(fifo), *args])
    finally:
        writer.join()
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, events, result.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_pipe_gives_the_events_the_file_gives(tmp_path: Path, jobs: str) -> None:
    data = (FIXTURES / "plain.pcap").read_bytes()
    code, events, stderr = _through_fifo(tmp_path, data, "--json", "--jobs", jobs)
    assert (code, stderr) == (0, "")
    assert events == EXPECTED["plain.pcap"]["events"]


def test_damage_in_a_pipe_names_the_pipe(tmp_path: Path) -> None:
    data = (FIXTURES / "plain.pcap").read_bytes()[:3000]
    code, events, stderr = _through_fifo(tmp_path, data, "--json")
    assert code == 1
    assert events[:1] == EXPECTED["plain.pcap"]["events"][:1]
    assert [e["complete"] for e in events] == [True, False]  # the second one was cut
    assert stderr == (
        f"error: {tmp_path / 'capture'}: damaged pcap after 20 packets (byte 2941 of 3000): "
        "record of 66 bytes cut short (2 events before the damage)\n"
    )
