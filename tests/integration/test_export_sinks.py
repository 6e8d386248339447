"""Export sinks against real servers: the OTel SDK's exporters → an OTLP receiver built
on opentelemetry-proto, and the redis client → a real redis-server (Debian).

These run the sinks through their SinkRunner, as the daemon does, with stored-
looking events; the daemon end to end (eBPF capture → store → sinks) is in
``test_fleet.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lumen_sniff.model import UsageSource
from lumen_sniff.sinks import OtlpSettings, QueueSettings, RedisSettings, SinkRunner
from lumen_sniff.sinks.otlp import OtlpLogsSink, OtlpMetricsSink
from lumen_sniff.sinks.redisstream import RedisStreamSink
from tests.conftest import require_or_skip
from tests.support.events import make_event
from tests.support.otlpreceiver import GrpcOtlpReceiver, OtlpReceiver, attrs_of

T0 = 1_750_000_000_000_000_000
_QUICK = QueueSettings(batch_wait_s=0.01, retry_pauses_s=(0.05, 0.05), close_timeout_s=10)


def _wait(pred: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


EVENTS = [
    make_event(
        T0,
        provider="openai",
        api="chat",
        model="gpt-4o-mini",
        input_tokens=1200,
        output_tokens=80,
        cache_read_tokens=1000,
        cost_usd=Decimal("0.000345"),
        tenant="acme",
        service="billing",
        duration_ms=1500.0,
        ttft_ms=300.0,
        host="api.openai.com",
    ),
    make_event(
        T0 + 1,
        provider="anthropic",
        api="messages",
        model="claude-sonnet-4",
        input_tokens=50,
        output_tokens=400,
        reasoning_tokens=100,
        cost_usd=None,
        status=529,
        error_type="overloaded_error",
        tenant=None,
        host="api.anthropic.com",
        duration_ms=250.0,
    ),
    make_event(
        T0 + 2,
        usage_source=UsageSource.ESTIMATED,
        input_tokens=10,
        output_tokens=5,
        tenant="acme",
        cost_usd=Decimal("0.00001"),
    ),
]


def test_otlp_metrics_and_logs_reach_a_real_receiver_with_convention_names() -> None:
    receiver = OtlpReceiver()
    settings = OtlpSettings(
        enabled=True,
        endpoint=receiver.endpoint,
        resource={"service.namespace": "payments", "host.name": "web-7"},
        metrics_interval_s=3600,
        queue=_QUICK,
    )
    metrics_sink = OtlpMetricsSink(settings)
    logs = SinkRunner(OtlpLogsSink(settings), settings.queue)
    metrics = SinkRunner(metrics_sink, settings.queue)
    for runner in (logs, metrics):
        runner.start()
        runner.committed(EVENTS)
    try:
        _wait(lambda: logs.sent == 3 and metrics.sent == 3)
        assert metrics_sink.flush()
        got = receiver.latest_metrics()
        tokens = got["gen_ai.client.token.usage"]
        assert tokens.unit == "{token}"
        points = {
            (a["gen_ai.provider.name"], a["gen_ai.token.type"]): p
            for p in tokens.histogram.data_points
            for a in [attrs_of(p.attributes)]
        }
        # Only reported usage: the estimated call records no token points.
        assert {k: p.sum for k, p in points.items()} == {
            ("openai", "input"): 1200,
            ("openai", "output"): 80,
            ("anthropic", "input"): 50,
            ("anthropic", "output"): 400,
        }
        first = points[("openai", "input")]
        assert list(first.explicit_bounds) == [float(4**i) for i in range(14)]
        assert attrs_of(first.attributes) == {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.token.type": "input",
            "server.address": "api.openai.com",
            "server.port": 443,
            "lumen.service": "billing",
            "lumen.tenant": "acme",
        }
        duration = got["gen_ai.client.operation.duration"]
        assert duration.unit == "s"
        failed = [
            attrs_of(p.attributes) for p in duration.histogram.data_points
            if "error.type" in attrs_of(p.attributes)
        ]  # fmt: skip
        assert [a["error.type"] for a in failed] == ["overloaded_error"]
        assert list(duration.histogram.data_points[0].explicit_bounds)[:3] == [0.01, 0.02, 0.04]
        cost = got["lumen.cost.usd"]
        assert cost.unit == "{USD}" and cost.sum.is_monotonic
        assert sum(p.as_double for p in cost.sum.data_points) == pytest.approx(0.000355)
        assert sum(p.as_int for p in got["lumen.unpriced.calls"].sum.data_points) == 1
        subsets = {
            attrs_of(p.attributes)["lumen.token.type"]: p.as_int
            for p in got["lumen.token.usage.subset"].sum.data_points
        }
        assert subsets == {"cache_read": 1000, "reasoning": 100}

        records = list(receiver.log_records())
        assert len(records) == 3
        resource, record = records[0]
        assert resource["service.namespace"] == "payments" and resource["host.name"] == "web-7"
        assert resource["service.name"] == "lumen-sniff"
        attrs = attrs_of(record.attributes)
        assert record.event_name == "lumen.usage" and record.time_unix_nano == T0
        assert attrs["gen_ai.usage.input_tokens"] == 1200
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
        assert attrs["lumen.cost.usd"] == pytest.approx(0.000345)
        assert attrs["lumen.tenant"] == "acme" and attrs["lumen.usage.source"] == "reported"
        assert attrs["lumen.service"] == "billing"
        assert attrs["lumen.duration_ms"] == 1500.0 and attrs["lumen.ttft_ms"] == 300.0
        assert attrs["lumen.api_key.id"] == "k:abcd…1234"
        error_attrs = attrs_of(records[1][1].attributes)
        assert error_attrs["error.type"] == "overloaded_error"
        assert "lumen.cost.usd" not in error_attrs
        assert error_attrs["gen_ai.usage.reasoning.output_tokens"] == 100
        assert attrs_of(records[2][1].attributes)["lumen.usage.source"] == "estimated"
    finally:
        receiver.stop()
        logs.closed()
        metrics.closed()


def test_a_dead_collector_queues_retries_and_counts_drops() -> None:
    receiver = OtlpReceiver()
    receiver.stop()  # nothing listens on the port any more
    settings = OtlpSettings(
        enabled=True,
        endpoint=receiver.endpoint,
        timeout_s=1,
        queue=QueueSettings(
            queue_size=4, batch_max=2, batch_wait_s=0.01, retry_pauses_s=(0.05,), close_timeout_s=2
        ),
    )
    runner = SinkRunner(OtlpLogsSink(settings), settings.queue)
    runner.start()
    started = time.monotonic()
    for i in range(10):
        runner.committed([make_event(T0 + i)])
    assert time.monotonic() - started < 1  # committed() never waits on the collector
    _wait(lambda: runner.stats()["queue"] == 0 and runner.stats()["dropped"])
    runner.closed()
    stats = runner.stats()
    assert stats["sent"] == 0 and stats["failures"] >= 1
    dropped = stats["dropped"]
    assert isinstance(dropped, dict) and sum(dropped.values()) == 10
    assert dropped.get("queue_full", 0) >= 1 and dropped.get("export_failed", 0) >= 1


# -------------------------------------------------------------------------- redis


@pytest.fixture
def redis_server() -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    require_or_skip(binary is not None, "redis-server (Debian package redis-server) missing")
    assert binary is not None
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "redis.sock"
        proc = _start_redis(binary, sock)
        try:
            yield sock, proc
        finally:
            proc.terminate()
            proc.wait(10)


def _start_redis(binary: str, sock: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(sock.parent)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait(sock.exists, 10)
    return proc


def test_redis_streams_one_xadd_per_call_by_tenant_bounded_and_reconnecting(
    redis_server: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    import redis

    sock, proc = redis_server
    settings = RedisSettings(enabled=True, url=f"unix://{sock}", maxlen=100, queue=_QUICK)
    runner = SinkRunner(RedisStreamSink(settings), settings.queue)
    runner.start()
    client = redis.Redis(unix_socket_path=str(sock), decode_responses=True)
    try:
        runner.committed(EVENTS)
        _wait(lambda: runner.sent == 3)
        acme = client.xrange("lumen:events:acme")
        assert [fields["id"] for _, fields in acme] == [EVENTS[0].id, EVENTS[2].id]
        first = acme[0][1]
        assert first["cost_usd"] == "0.000345" and first["input_tokens"] == "1200"
        assert first["tenant"] == "acme" and first["usage_source"] == "reported"
        unknown = client.xrange("lumen:events:unknown")
        assert len(unknown) == 1 and "cost_usd" not in unknown[0][1]  # unpriced, not $0

        runner.committed([make_event(T0 + 10 + i, tenant="bulk") for i in range(1000)])
        _wait(lambda: runner.sent == 1003)
        length = client.xlen("lumen:events:bulk")
        assert 100 <= length < 1000  # MAXLEN ~ 100: trimmed, approximately

        # Redis goes away: sends fail and are retried; it comes back: delivery resumes.
        client.close()
        proc.terminate()
        proc.wait(10)
        sock.unlink(missing_ok=True)
        runner.committed([make_event(T0 + 5000, tenant="late")])
        _wait(lambda: runner.failures >= 1)
        restarted = _start_redis(str(shutil.which("redis-server")), sock)
        try:
            runner.committed([make_event(T0 + 5001, tenant="late")])
            _wait(lambda: runner.sent + sum(runner.dropped.values()) == 1005)
            late = redis.Redis(unix_socket_path=str(sock), decode_responses=True)
            stored = late.xlen("lumen:events:late")
            late.close()
            # Whatever was not delivered while Redis was down is counted as dropped.
            assert stored == 2 - runner.dropped.get("export_failed", 0)
            assert stored >= 1
        finally:
            runner.closed()
            restarted.terminate()
            restarted.wait(10)
    finally:
        client.close()


def test_otlp_over_grpc_reaches_a_real_grpc_receiver() -> None:
    receiver = GrpcOtlpReceiver()
    settings = OtlpSettings(
        enabled=True, endpoint=receiver.endpoint, protocol="grpc", metrics_interval_s=3600
    )
    metrics_sink = OtlpMetricsSink(settings)
    logs_sink = OtlpLogsSink(settings)
    try:
        logs_sink.send(EVENTS)
        metrics_sink.send(EVENTS)
        assert metrics_sink.flush()
        ids = [attrs_of(r.attributes)["lumen.event.id"] for _, r in receiver.log_records()]
        assert ids == [e.id for e in EVENTS]
        tokens = receiver.latest_metrics()["gen_ai.client.token.usage"]
        assert sum(p.sum for p in tokens.histogram.data_points) == 1200 + 80 + 50 + 400
    finally:
        metrics_sink.close()
        logs_sink.close()
        receiver.stop()
