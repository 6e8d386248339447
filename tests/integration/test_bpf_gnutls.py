"""GnuTLS through the kernel: gnutls-cli and libcurl-gnutls (python3-pycurl) against the stand-in.

``libgnutls.so.30`` is hooked at start (``gnutls_record_send``/``_recv`` entry
and return, ``gnutls_deinit`` closes). The usage each client read itself must
be exactly what the pipeline makes of the captured bytes, attributed to the
client's process, over HTTP/1.1 and HTTP/2 (libcurl's nghttp2).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lumen_sniff.model import Chunk, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from tests.conftest import require_or_skip
from tests.support.bpfcap import (
    REPO,
    Collector,
    Server,
    TestCgroup,
    bpf_ready,
    shared_capture,
)

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")
_SYSTEM_PYTHON = "/usr/bin/python3"
"""Debian's interpreter: its pycurl links libcurl-gnutls."""


@pytest.fixture(scope="module")
def collector() -> Collector:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    capture = shared_capture()
    hooked = capture.capture.status()["hooked"]
    require_or_skip(
        any(h["library"] == "gnutls" and h["probes"] for h in hooked),
        "libgnutls.so.30 is not hooked (install libgnutls30: make setup)",
    )
    return capture


def _all_closed(chunks: list[Chunk]) -> bool:
    conns = {c.conn for c in chunks}
    return bool(conns) and conns == {c.conn for c in chunks if c.closed}


def _events(collector: Collector, cg: TestCgroup) -> list[UsageEvent]:
    ours = lambda c: c.process is not None and c.process.cgroup_id == cg.cgroup_id  # noqa: E731
    collector.wait_for(_all_closed, of=ours)
    time.sleep(0.05)
    conns = {c.conn for c in collector.chunks(ours)}
    chunks = collector.chunks(lambda c: c.conn in conns)
    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in chunks for out in pipeline.feed(chunk)] + pipeline.close()
    return [e for e in outputs if isinstance(e, UsageEvent)]


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_libcurl_gnutls_usage_is_captured_exactly(
    collector: Collector, standin: Server, proto: str
) -> None:
    ok = Path(_SYSTEM_PYTHON).exists() and (
        subprocess.run([_SYSTEM_PYTHON, "-c", "import pycurl"], check=False).returncode == 0
    )
    require_or_skip(ok, "python3-pycurl is missing (make setup installs it)")
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        argv = [_SYSTEM_PYTHON, str(REPO / "tests/support/gnutls_client.py")]
        argv += [str(standin.info["ca"]), str(standin.info["base_url"]), proto]
        proc = subprocess.Popen(
            cg.argv(*argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        stdout, stderr = proc.communicate("\n", timeout=120)
        assert proc.returncode == 0, stderr[-2000:]
        events = _events(collector, cg)
    finally:
        cg.remove()
    client = json.loads(stdout.strip().splitlines()[-1])
    assert len(events) == client["calls"], events
    for event in events:
        assert (event.status, event.model, event.pid) == (200, "gpt-4o-mini", proc.pid)
        assert event.process in ("python3", "python3.11")
        assert event.usage_source is UsageSource.REPORTED
    assert sorted(e.stream for e in events) == [False, False, True]
    captured = {f: sum(getattr(e, f) for e in events) for f in _USAGE_FIELDS}
    assert captured == client["usage"]


def test_gnutls_cli_usage_is_captured_exactly(collector: Collector, standin: Server) -> None:
    require_or_skip(shutil.which("gnutls-cli") is not None, "gnutls-cli missing (gnutls-bin)")
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi gnutls-cli"}],
         "max_tokens": 10}
    ).encode()  # fmt: skip
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer sk-gnutls-cli-0000\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        argv = ["gnutls-cli", "--x509cafile", str(standin.info["ca"]), "--logfile=/dev/null"]
        argv += ["--port", str(standin.info["port"]), "127.0.0.1"]
        with subprocess.Popen(
            cg.argv(*argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(request)
            proc.stdin.flush()
            # Keep stdin open: at its EOF gnutls-cli says goodbye before the answer comes.
            out = proc.stdout.read()
            proc.wait(timeout=60)
        assert proc.returncode == 0
        events = _events(collector, cg)
    finally:
        cg.remove()
    body_out = out[out.index(b"\r\n\r\n") + 4 :]  # one chunk of chunked encoding
    usage = json.loads(body_out[body_out.index(b"{") : body_out.rindex(b"}") + 1])["usage"]
    assert len(events) == 1, events
    (event,) = events
    assert (event.status, event.pid, event.process) == (200, proc.pid, "gnutls-cli")
    assert (event.input_tokens, event.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert event.usage_source is UsageSource.REPORTED
