"""The sink runner's queue, batching, retries and drop accounting; the GenAI mapping; config."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumen_sniff.config import load_settings
from lumen_sniff.errors import ConfigError
from lumen_sniff.model import UsageEvent, UsageSource
from lumen_sniff.sinks import DROP_REASONS, QueueSettings, SinkRejected, SinkRunner, build_sinks
from lumen_sniff.sinks.genai import (
    DURATION_BUCKETS_S,
    TOKEN_BUCKETS,
    log_attributes,
    metric_attributes,
    subset_points,
    token_points,
)
from tests.support.events import make_event

T0 = 1_750_000_000_000_000_000


class FakeSink:
    """Records batches; fails while ``failing`` is set; can block until released."""

    name = "fake"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.failing = False
        self.reject = False
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.closed = False

    def send(self, events: Sequence[UsageEvent]) -> None:
        self.entered.set()
        self.release.wait()
        if self.reject:
            raise SinkRejected("no")
        if self.failing:
            raise ConnectionError("collector down")
        self.batches.append([e.id for e in events])

    def close(self) -> None:
        self.closed = True


def _settings(**over: object) -> QueueSettings:
    base: dict[str, object] = {
        "queue_size": 10,
        "batch_max": 4,
        "batch_wait_s": 0.01,
        "retry_pauses_s": (0.0, 0.0),
        "close_timeout_s": 5.0,
    }
    base.update(over)
    return QueueSettings(**base)  # type: ignore[arg-type]


def _accounted(runner: SinkRunner) -> int:
    return runner.sent + sum(runner.dropped.values())


def test_batches_are_bounded_and_everything_is_delivered_in_order() -> None:
    sink = FakeSink()
    runner = SinkRunner(sink, _settings())
    runner.start()
    events = [make_event(T0 + i) for i in range(9)]
    runner.committed(events)
    runner.closed()
    assert [i for batch in sink.batches for i in batch] == [e.id for e in events]
    assert all(len(b) <= 4 for b in sink.batches)
    assert runner.sent == 9 and runner.dropped == {} and sink.closed


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    sink = FakeSink()
    sink.release.clear()  # the collector hangs
    runner = SinkRunner(sink, _settings(queue_size=5, close_timeout_s=0.2))
    runner.start()
    runner.committed([make_event(T0)])
    assert sink.entered.wait(5)
    runner.committed([make_event(T0 + i) for i in range(8)])  # returns at once
    assert runner.dropped == {"queue_full": 3}
    runner.closed()  # the send never returns: queued and in-flight are shutdown drops
    assert runner.dropped == {"queue_full": 3, "shutdown": 6}
    assert _accounted(runner) == 9
    sink.release.set()


def test_failures_are_retried_then_dropped_and_counted() -> None:
    sink = FakeSink()
    sink.failing = True
    runner = SinkRunner(sink, _settings(retry_pauses_s=(0.0, 0.0, 0.0)))
    runner.start()
    runner.committed([make_event(T0 + i) for i in range(3)])
    runner.closed()
    assert runner.failures >= 1 and runner.sent == 0
    assert runner.dropped == {"export_failed": 3}
    assert runner.stats()["last_error"] == "ConnectionError: collector down"


def test_recovery_after_a_failure_delivers() -> None:
    sink = FakeSink()
    sink.failing = True
    runner = SinkRunner(sink, _settings(retry_pauses_s=(0.2, 5.0)))
    runner.start()
    runner.committed([make_event(T0)])
    while runner.failures == 0:
        time.sleep(0.005)
    sink.failing = False  # the retry after the first pause succeeds
    runner.committed([make_event(T0 + 1)])
    runner.closed()
    assert runner.sent == 2 and runner.failures == 1 and runner.dropped == {}


def test_rejected_batches_are_not_retried() -> None:
    sink = FakeSink()
    sink.reject = True
    runner = SinkRunner(sink, _settings(retry_pauses_s=(10.0,)))
    runner.start()
    runner.committed([make_event(T0)])
    runner.closed()
    assert runner.dropped == {"rejected": 1} and runner.failures == 1


def test_after_close_everything_is_a_shutdown_drop() -> None:
    runner = SinkRunner(FakeSink(), _settings())
    runner.start()
    runner.closed()
    runner.committed([make_event(T0)])
    assert runner.dropped == {"shutdown": 1}


# ------------------------------------------------------------------ GenAI mapping


def test_bucket_boundaries_are_the_conventions() -> None:
    assert TOKEN_BUCKETS[:3] == (1.0, 4.0, 16.0) and TOKEN_BUCKETS[-1] == 67108864.0
    assert len(TOKEN_BUCKETS) == 14
    assert DURATION_BUCKETS_S[0] == 0.01 and DURATION_BUCKETS_S[-1] == pytest.approx(81.92)
    assert len(DURATION_BUCKETS_S) == 14


def test_metric_attributes_and_token_points() -> None:
    event = make_event(
        T0,
        provider="anthropic",
        api="messages",
        model="claude-x",
        host="api.anthropic.com",
        input_tokens=120,
        output_tokens=30,
        cache_read_tokens=100,
        reasoning_tokens=10,
    )
    assert metric_attributes(event) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.response.model": "claude-x",
        "server.address": "api.anthropic.com",
        "server.port": 443,
    }
    assert token_points(event) == [(120, "input"), (30, "output")]
    assert subset_points(event) == [(100, "cache_read"), (10, "reasoning")]
    local = make_event(T0, provider="ollama", api="generate", host="127.0.0.1:11434")
    assert metric_attributes(local)["server.port"] == 11434
    assert metric_attributes(local)["gen_ai.operation.name"] == "text_completion"


def test_estimated_or_unknown_usage_is_never_a_token_point() -> None:
    for source in (UsageSource.ESTIMATED, UsageSource.NONE):
        assert token_points(make_event(T0, usage_source=source)) == []
        assert subset_points(make_event(T0, usage_source=source)) == []


def test_log_attributes_carry_usage_cost_and_attribution_but_no_text() -> None:
    event = make_event(
        T0,
        cost_usd=Decimal("0.0125"),
        tenant="acme",
        container="c0ffee",
        unit="app.service",
        exe="/usr/bin/python3",
        cache_write_tokens=7,
    )
    attrs = log_attributes(event)
    assert attrs["gen_ai.usage.input_tokens"] == 100
    assert attrs["gen_ai.usage.output_tokens"] == 20
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 0
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 0
    assert attrs["lumen.cost.usd"] == 0.0125
    assert attrs["lumen.tenant"] == "acme"
    assert attrs["container.id"] == "c0ffee"
    assert attrs["lumen.systemd.unit"] == "app.service"
    assert attrs["lumen.usage.source"] == "reported"
    assert attrs["lumen.api_key.id"] == "k:abcd…1234"
    assert "error.type" not in attrs
    unpriced = log_attributes(make_event(T0, cost_usd=None, status=429, error_type="rate_limit"))
    assert "lumen.cost.usd" not in unpriced and unpriced["error.type"] == "rate_limit"
    assert "gen_ai.usage.input_tokens" not in log_attributes(
        make_event(T0, usage_source=UsageSource.NONE)
    )


# ------------------------------------------------------------------------ config


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path, required=True)


def test_sinks_are_off_by_default_and_nothing_is_imported(tmp_path: Path) -> None:
    settings = _load(tmp_path, "")
    runners, errors = build_sinks(settings)
    assert runners == [] and errors == {}


def test_otlp_and_redis_tables_validate(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        '[otlp]\nenabled = true\nendpoint = "http://c:4318"\nprotocol = "grpc"\n'
        'headers = { authorization = "Bearer x" }\nresource = { "host.name" = "h1" }\n'
        "queue_size = 5\nretry_pauses_s = [1, 2]\n"
        '[redis]\nenabled = true\nurl = "unix:///run/redis.sock"\nkey = "s:{provider}:{tenant}"\n',
    )
    otlp = settings.otlp  # type: ignore[attr-defined]
    assert (
        otlp.enabled and otlp.protocol == "grpc" and otlp.headers == {"authorization": "Bearer x"}
    )
    assert otlp.resource == {"host.name": "h1"} and otlp.queue.queue_size == 5
    assert otlp.queue.retry_pauses_s == (1.0, 2.0)
    assert settings.redis.key == "s:{provider}:{tenant}"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[otlp]\nprotocol = "thrift"\n',
            ":2: [otlp] protocol: must be one of",
        ),
        ('[otlp]\nendpoint = "collector:4318"\n', ":2: [otlp] endpoint: must be an http://"),
        ("[otlp]\nenabled = 1\n", ":2: [otlp] enabled: must be true or false"),
        ("[otlp]\nqueue_size = 0\n", ":2: [otlp] queue_size: must be >= 1"),
        ("[otlp]\nbogus = 1\n", ":2: [otlp] bogus: unknown key [otlp] 'bogus'"),
        ('[redis]\nurl = "http://x"\n', ":2: [redis] url: must be a redis://"),
        ('[redis]\nkey = "x:{host}"\n', ":2: [redis] key: only {tenant} and {provider}"),
    ],
)
def test_bad_sink_config_names_file_line_and_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert message in str(err.value)


class ScriptedSink:
    """Fails or succeeds by a script of outcomes (then succeeds)."""

    name = "scripted"

    def __init__(self, outcomes: list[str]) -> None:
        self._outcomes = list(outcomes)
        self.delivered = 0

    def send(self, events: Sequence[UsageEvent]) -> None:
        outcome = self._outcomes.pop(0) if self._outcomes else "ok"
        if outcome == "fail":
            raise ConnectionError("down")
        if outcome == "reject":
            raise SinkRejected("bad")
        self.delivered += len(events)

    def close(self) -> None:
        pass


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=0, max_value=12), max_size=8),
    outcomes=st.lists(st.sampled_from(["ok", "fail", "reject"]), max_size=10),
    queue_size=st.integers(min_value=1, max_value=20),
    batch_max=st.integers(min_value=1, max_value=6),
)
def test_every_record_is_sent_or_dropped_exactly_once(
    batches: list[int], outcomes: list[str], queue_size: int, batch_max: int
) -> None:
    sink = ScriptedSink(outcomes)
    runner = SinkRunner(
        sink, _settings(queue_size=queue_size, batch_max=batch_max, retry_pauses_s=(0.0,))
    )
    runner.start()
    n = 0
    for size in batches:
        runner.committed([make_event(T0 + n + i) for i in range(size)])
        n += size
    runner.closed()
    assert runner.sent == sink.delivered
    assert _accounted(runner) == n
    assert set(runner.dropped) <= set(DROP_REASONS)


def test_the_export_libraries_are_not_imported_when_export_is_off() -> None:
    code = (
        "import sys, lumen_sniff.daemon, lumen_sniff.config, lumen_sniff.api.app, "
        "lumen_sniff.sinks\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry', 'redis', 'grpc'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
