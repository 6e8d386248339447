"""Go crypto/tls through the kernel: a real net/http client, built here, hooked at entry and RETs.

The client (``tests/support/goclient``) is built with Debian's Go, stripped
(``-ldflags=-s -w``) and not, and calls the TLS stand-in over HTTP/1.1 and over
HTTP/2 (ALPN; Go's bundled h2). The usage the client read itself must be
exactly what the pipeline makes of the captured bytes, attributed to the Go
process; and the program's output and exit code must be those of an identical
copy run from a memfd, which the capture never hooks.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumen_sniff.capture.bpf.golang.locate import GO_READ, GO_WRITE, locate
from lumen_sniff.model import Chunk, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.conftest import require_or_skip
from tests.support.bpfcap import (
    Collector,
    Server,
    TestCgroup,
)
from tests.support.golang import build_goclient, go_available, run_unhooked

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")


@pytest.fixture(scope="module")
def binaries() -> Iterator[dict[bool, Path]]:
    ok, why = go_available()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory(prefix="lumen-go-") as work:
        root = Path(work)
        yield {
            False: build_goclient(root, stripped=False, name="goclient"),
            True: build_goclient(root, stripped=True, name="goclient-s"),
        }


def test_stripped_and_unstripped_binaries_locate_the_same_functions(
    binaries: dict[bool, Path],
) -> None:
    plain, stripped = locate(str(binaries[False])), locate(str(binaries[True]))
    assert plain.refused == "" and stripped.refused == "", (plain, stripped)
    assert plain.version.startswith("go1.")
    for name in (GO_WRITE, GO_READ):
        a, b = plain.function(name), stripped.function(name)
        assert a is not None and b is not None
        assert (a.entry, a.returns) == (b.entry, b.returns)
        assert a.returns


def _hooked(collector: Collector, path: Path) -> bool:
    status = collector.capture.status()
    return any(h["path"] == str(path) and h["probes"] for h in status["hooked"])


def _all_closed(chunks: list[Chunk]) -> bool:
    conns = {c.conn for c in chunks}
    return bool(conns) and conns == {c.conn for c in chunks if c.closed}


@pytest.mark.parametrize("proto", ["h1", "h2"])
@pytest.mark.parametrize("stripped", [False, True], ids=["unstripped", "stripped"])
def test_go_client_usage_is_captured_exactly(
    collector: Collector,
    standin: Server,
    binaries: dict[bool, Path],
    stripped: bool,
    proto: str,
) -> None:
    binary = binaries[stripped]
    args = (str(standin.info["ca"]), str(standin.info["base_url"]), proto)
    reference = run_unhooked(binary, *args)
    assert reference.returncode == 0, reference.stderr[-2000:]

    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        proc = subprocess.Popen(
            cg.argv(str(binary), *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The binary is new to the capture: let discovery hook it before it starts.
        deadline = time.monotonic() + 30
        while not _hooked(collector, binary) and time.monotonic() < deadline:
            time.sleep(0.02)
        hooked = _hooked(collector, binary)
        stdout, stderr = proc.communicate("\n", timeout=120)
        assert hooked, collector.capture.status()["skipped"]
        ours = lambda c: c.process is not None and c.process.cgroup_id == cg.cgroup_id  # noqa: E731
        collector.wait_for(_all_closed, of=ours)
        time.sleep(0.05)
        conns = {c.conn for c in collector.chunks(ours)}
        chunks = collector.chunks(lambda c: c.conn in conns)
    finally:
        cg.remove()

    # Never harm the monitored process: same output, same exit code.
    assert (proc.returncode, stdout) == (reference.returncode, reference.stdout), stderr[-2000:]
    expected_proto = "HTTP/2.0" if proto == "h2" else "HTTP/1.1"
    assert all(f" {expected_proto} 200 " in line for line in stdout.splitlines()[:-1])

    client = json.loads(stdout.strip().splitlines()[-1])

    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in chunks for out in pipeline.feed(chunk)] + pipeline.close()
    events = [e for e in outputs if isinstance(e, UsageEvent)]
    assert len(events) == client["calls"], events
    for event in events:
        assert event.status == 200
        assert event.model == "gpt-4o-mini"
        assert event.pid == proc.pid
        assert event.process == binary.name
        assert event.usage_source is UsageSource.REPORTED
    assert sorted(e.stream for e in events) == [False, False, True]
    captured = {f: sum(getattr(e, f) for e in events) for f in _USAGE_FIELDS}
    assert captured == client["usage"]
