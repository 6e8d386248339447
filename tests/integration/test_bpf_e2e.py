"""End to end through the kernel: real SDKs and clients → eBPF → Pipeline → UsageEvents.

Every TLS scenario of ``tests.support.clients`` (openai sync and async streams,
chat with and without include_usage, responses, embeddings; anthropic sync,
async and streaming; google-genai generate and stream; httpx http2; curl
--http2; node fetch; cohere v2 chat/stream/embed; boto3 Bedrock Converse,
ConverseStream, InvokeModel and its stream) runs once against the TLS
stand-in. The usage the client
itself reported must be exactly what the pipeline makes of the captured bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from lumen_sniff.model import Chunk, Usage, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from lumen_sniff.pricing.prices import Pricer
from tests.support.bpfcap import (
    REPO,
    Collector,
    Server,
    TestCgroup,
)
from tests.support.clients import SCENARIOS

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

TLS_SCENARIOS = sorted(name for name, sc in SCENARIOS.items() if sc.tls)
_PRICED_FAMILIES = {"bedrock": "aws", "cohere": "cohere"}
"""Scenario prefix → provider whose events must also be priced."""
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

# What each client process is named as a service: the module python runs, the
# script node runs, curl's executable.
_SERVICES = {
    "python": "tests.support.clients",
    "python3": "tests.support.clients",
    "curl": "curl",
    "node": "clients_node.js",
}


def _all_closed(chunks: list[Chunk]) -> bool:
    conns = {c.conn for c in chunks}
    return bool(conns) and conns == {c.conn for c in chunks if c.closed}


@pytest.mark.parametrize("scenario", TLS_SCENARIOS)
def test_client_reported_usage_equals_captured_usage(
    collector: Collector, standin: Server, scenario: str
) -> None:
    cg = TestCgroup()
    collector.watch(cg.cgroup_id)
    try:
        argv = [sys.executable, "-m", "tests.support.clients", scenario]
        argv += ["--base-url", str(standin.info["base_url"]), "--ca", str(standin.info["ca"])]
        run = subprocess.run(cg.argv(*argv), capture_output=True, text=True, timeout=120, cwd=REPO)
        assert run.returncode == 0, run.stderr[-2000:]
        client = json.loads(run.stdout.strip().splitlines()[-1])
        ours = lambda c: c.process is not None and c.process.cgroup_id == cg.cgroup_id  # noqa: E731
        collector.wait_for(_all_closed, of=ours)
        time.sleep(0.05)
        conns = {c.conn for c in collector.chunks(ours)}
        chunks = collector.chunks(lambda c: c.conn in conns)
    finally:
        cg.remove()

    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in chunks for out in pipeline.feed(chunk)] + pipeline.close()
    events = [e for e in outputs if isinstance(e, UsageEvent)]
    assert len(events) == client["calls"], (events, client)
    for event in events:
        assert event.status == client["status"]
        if client["model"]:
            assert event.model == client["model"]
        assert event.pid is not None and event.process in _SERVICES
        assert event.service == _SERVICES[event.process]  # from the command line
    if client["usage"] is None:
        assert all(e.usage_source in (UsageSource.NONE, UsageSource.ESTIMATED) for e in events)
        return
    assert all(e.usage_source is UsageSource.REPORTED for e in events)
    assert all(e.stream == client["stream"] for e in events)
    captured = {f: sum(getattr(e, f) for e in events) for f in _USAGE_FIELDS}
    assert captured == client["usage"]
    family = _PRICED_FAMILIES.get(scenario.partition("_")[0])
    if family is not None:  # the families added as rows: provider and exact cost too
        pricer = Pricer()
        for event in events:
            usage = Usage(
                **{f: getattr(event, f) for f in _USAGE_FIELDS}, source=UsageSource.REPORTED
            )
            price = pricer.price(family, client["model"], usage, event.started_ns).cost_usd
            assert event.provider == family
            assert event.cost_usd is not None and event.cost_usd == price
