"""A fleet on one machine: three daemons, a real Prometheus, an OTLP receiver.

Real components throughout: Debian's ``prometheus`` (2.42) scrapes three
``lumen-sniff run`` daemons, each with its own database, API port and eBPF
capture filtered to its own clients (see :mod:`tests.support.fleet`). The
clients are the real SDKs, talking to the TLS stand-in, each daemon's with its
own tenant. Daemon ``fleet-a`` also exports OTLP to a receiver built on the
official opentelemetry-proto classes, and ``fleet-c`` XADDs to a real
redis-server.

The tests run in file order on one fleet: the last two stop the receiver and
restart a daemon.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_or_skip
from tests.support.bpfcap import REPO, bpf_ready, spawn_server
from tests.support.fleet import DaemonProc, Prometheus, run_named_client, wait_until
from tests.support.otlpreceiver import OtlpReceiver, attrs_of

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = REPO / "deploy" / "grafana" / "lumen-fleet.json"

TRAFFIC = {
    "fleet-a": ("acme", ["openai_chat", "anthropic_messages", "openai_chat_error_429"]),
    "fleet-b": ("globex", ["openai_chat_stream_usage", "anthropic_messages", "openai_chat"]),
    "fleet-c": ("initech", ["openai_chat", "anthropic_stream"]),
}
"""host → (tenant, client scenarios). Each host's clients are named ``lum<host>``."""


@dataclass
class Fleet:
    standin: dict[str, Any]
    receiver: OtlpReceiver
    daemons: dict[str, DaemonProc]
    prom: Prometheus
    calls: dict[str, int]

    def traffic(self, host: str, scenarios: list[str]) -> None:
        tenant = TRAFFIC[host][0]
        for scenario in scenarios:
            run_named_client(f"lum{host}", scenario, self.standin, tenant)
        self.calls[host] += len(scenarios)
        daemon = self.daemons[host]
        wait_until(
            lambda: daemon.api("/api/summary")["requests"] == self.calls[host],
            what=f"{host} to store {self.calls[host]} calls",
        )

    def db_cost(self) -> float:
        return sum(d.api("/api/summary")["cost_usd"] for d in self.daemons.values())


def _config(host: str, receiver: OtlpReceiver, redis_sock: Path) -> str:
    text = f'[capture]\ncomms = ["lum{host}"]\n'
    if host == "fleet-c":
        text += f'[redis]\nenabled = true\nurl = "unix://{redis_sock}"\nbatch_wait_s = 0.05\n'
    if host == "fleet-a":
        text += (
            f'[otlp]\nenabled = true\nendpoint = "{receiver.endpoint}"\n'
            "metrics_interval_s = 1\ntimeout_s = 1\nbatch_wait_s = 0.05\n"
            "retry_pauses_s = [0.2, 0.2]\nclose_timeout_s = 3\n"
            'resource = { "host.name" = "fleet-a", "service.namespace" = "fleet-test" }\n'
        )
    return text


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    require_or_skip(shutil.which("prometheus") is not None, "Debian package prometheus missing")
    require_or_skip(shutil.which("redis-server") is not None, "Debian package redis-server missing")
    receiver = OtlpReceiver()
    daemons: dict[str, DaemonProc] = {}
    prom: Prometheus | None = None
    with (
        tempfile.TemporaryDirectory() as ca_dir,
        tempfile.TemporaryDirectory() as workdir,
        spawn_server("tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir) as server,
        redis_server(Path(workdir) / "redis.sock") as redis_sock,
    ):
        try:
            for host in TRAFFIC:
                config = _config(host, receiver, redis_sock)
                daemons[host] = DaemonProc(host, Path(workdir), config)
                daemons[host].start()
            prom = Prometheus({h: d.port for h, d in daemons.items()}, RULES)
            fleet = Fleet(server.info, receiver, daemons, prom, {h: 0 for h in TRAFFIC})
            for host, (_, scenarios) in TRAFFIC.items():
                fleet.traffic(host, scenarios)
            total = sum(fleet.calls.values())
            wait_until(
                lambda: prom.value("sum(lumen_requests_total)") == total,
                what=f"prometheus to see {total} calls",
            )
            yield fleet
        finally:
            for daemon in daemons.values():
                daemon.stop()
            if prom is not None:
                prom.stop()
            receiver.stop()


@contextlib.contextmanager
def redis_server(sock: Path) -> Iterator[Path]:
    """Debian's redis-server on a unix socket only."""
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(sock.parent)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(sock.exists, 10, "redis-server")
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fleet_redis(fleet: Fleet) -> Iterator[Any]:
    import redis

    sock = fleet.daemons["fleet-c"].workdir / "redis.sock"
    client = redis.Redis(unix_socket_path=str(sock), decode_responses=True)
    yield client
    client.close()


def test_promtool_accepts_the_shipped_rules() -> None:
    promtool = shutil.which("promtool")
    require_or_skip(promtool is not None, "promtool (Debian package prometheus) missing")
    assert promtool is not None and len(RULES) == 2
    run = subprocess.run(
        [promtool, "check", "rules", *map(str, RULES)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _api_cost_by_model(daemons: dict[str, DaemonProc]) -> dict[str, float]:
    out: dict[str, float] = {}
    for daemon in daemons.values():
        usage = daemon.api("/api/usage", group_by="model", bucket="day", since="1d")
        for series in usage["series"]:
            costs = [p["cost_usd"] for p in series["points"] if p["cost_usd"] is not None]
            if costs:
                model = series["group"] or "unknown"
                out[model] = out.get(model, 0.0) + sum(costs)
    return out


def test_prometheus_cost_by_model_equals_the_daemons_to_the_cent(fleet: Fleet) -> None:
    prom_by_model = fleet.prom.by("sum by (model) (lumen_cost_usd_total)", "model")
    api_by_model = _api_cost_by_model(fleet.daemons)
    assert set(prom_by_model) == set(api_by_model) and len(api_by_model) >= 2
    for model, cost in api_by_model.items():
        assert round(prom_by_model[model], 2) == round(cost, 2)
        assert prom_by_model[model] == pytest.approx(cost, rel=1e-9)
    total = fleet.prom.value("sum(lumen_cost_usd_total)")
    assert total == pytest.approx(fleet.db_cost(), rel=1e-9)
    # Every host and tenant is labelled; each daemon saw only its own clients.
    tenants = fleet.prom.by("sum by (tenant) (lumen_requests_total)", "tenant")
    assert tenants == {t: len(s) for t, s in TRAFFIC.values()}
    processes = fleet.prom.by("sum by (host, process) (lumen_requests_total)", "process")
    assert processes == {f"lum{h}": len(s) for h, (_, s) in TRAFFIC.items()}
    hosts = fleet.prom.by("sum by (host) (lumen_cost_usd_total)", "host")
    assert hosts.keys() == TRAFFIC.keys()
    a_cost = fleet.daemons["fleet-a"].api("/api/summary")["cost_usd"]
    assert hosts["fleet-a"] == pytest.approx(a_cost)


def _dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    return exprs


def _concrete(expr: str) -> str:
    """Grafana's variables as the dashboard's defaults would set them."""
    expr = expr.replace("$__rate_interval", "30s").replace("$__range", "1h")
    return re.sub(r"\$(host|service|tenant)\b", ".*", expr)


def test_every_dashboard_query_parses_and_returns_data(fleet: Fleet) -> None:
    empty = [e for e in _dashboard_queries() if not fleet.prom.query(_concrete(e))]
    assert empty == []
    for record in ("lumen:cost_usd:increase1h", "lumen_host:cost_usd_per_hour:rate5m"):
        wait_until(lambda r=record: fleet.prom.query(r), 30, f"recording rule {record}")  # type: ignore[misc]


def test_otlp_receiver_gets_each_call_of_its_daemon(fleet: Fleet) -> None:
    daemon = fleet.daemons["fleet-a"]
    events = daemon.api("/api/events", limit=100)["events"]
    assert len(events) == len(TRAFFIC["fleet-a"][1])
    wait_until(
        lambda: daemon.api("/api/status")["export"]["otlp_logs"]["sent"] == len(events),
        what="the log records to be sent",
    )
    received = list(fleet.receiver.log_records())
    records = {attrs_of(r.attributes)["lumen.event.id"]: (res, r) for res, r in received}
    for event in events:
        resource, record = records[event["id"]]
        attrs = attrs_of(record.attributes)
        assert resource["host.name"] == "fleet-a" and resource["service.name"] == "lumen-sniff"
        assert attrs["lumen.tenant"] == "acme" and attrs["process.executable.name"] == "lumfleet-a"
        assert attrs["http.response.status_code"] == event["status"]
        assert attrs["lumen.usage.source"] == event["usage_source"]
        if event["usage_source"] != "none":
            assert attrs["gen_ai.usage.input_tokens"] == event["input_tokens"]
            assert attrs["gen_ai.usage.output_tokens"] == event["output_tokens"]
            assert attrs["gen_ai.usage.cache_read.input_tokens"] == event["cache_read_tokens"]
        assert attrs.get("lumen.cost.usd") == event["cost_usd"]
        assert attrs["lumen.api_key.id"] == event["api_key_id"]
        assert ("error.type" in attrs) == (event["status"] >= 400)
        assert record.time_unix_nano > 0 and not record.body.string_value.count("Hello")
    reported = [e for e in events if e["usage_source"] == "reported"]
    want = {
        "input": sum(e["input_tokens"] for e in reported),
        "output": sum(e["output_tokens"] for e in reported),
    }

    def token_sums() -> dict[str, float] | None:
        metric = fleet.receiver.latest_metrics().get("gen_ai.client.token.usage")
        if metric is None:
            return None
        sums: dict[str, float] = {}
        for p in metric.histogram.data_points:
            kind = attrs_of(p.attributes)["gen_ai.token.type"]
            sums[kind] = sums.get(kind, 0) + p.sum
        return sums if sums == want else None

    wait_until(token_sums, 30, f"token usage {want}")
    got = fleet.receiver.latest_metrics()
    assert got["gen_ai.client.token.usage"].unit == "{token}"
    assert got["gen_ai.client.operation.duration"].unit == "s"
    cost = sum(p.as_double for p in got["lumen.cost.usd"].sum.data_points)
    assert cost == pytest.approx(daemon.api("/api/summary")["cost_usd"], rel=1e-9)


def test_redis_stream_holds_each_call_of_its_daemon(fleet: Fleet, fleet_redis: Any) -> None:
    daemon = fleet.daemons["fleet-c"]
    events = daemon.api("/api/events", limit=100)["events"]
    wait_until(
        lambda: daemon.api("/api/status")["export"]["redis"]["sent"] == len(events),
        what="the stream entries to be sent",
    )
    entries = [fields for _, fields in fleet_redis.xrange("lumen:events:initech")]
    assert sorted(e["id"] for e in entries) == sorted(e["id"] for e in events)
    by_id = {e["id"]: e for e in events}
    for entry in entries:
        event = by_id[entry["id"]]
        assert entry["input_tokens"] == str(event["input_tokens"])
        assert entry["process"] == "lumfleet-c" and entry["tenant"] == "initech"
        assert float(entry["cost_usd"]) == pytest.approx(event["cost_usd"])


def test_a_dead_collector_queues_counts_drops_and_capture_goes_on(fleet: Fleet) -> None:
    daemon = fleet.daemons["fleet-a"]
    fleet.receiver.stop()
    before = len(list(fleet.receiver.log_records()))
    fleet.traffic("fleet-a", ["openai_chat", "openai_chat"])  # capture and store go on
    total = fleet.calls["fleet-a"]

    def settled() -> dict[str, Any] | None:
        logs: dict[str, Any] = daemon.api("/api/status")["export"]["otlp_logs"]
        return logs if logs["sent"] + sum(logs["dropped"].values()) == total else None

    logs = wait_until(settled, 60, "the export to give up on the dead collector")
    assert logs["dropped"].get("export_failed", 0) + logs["dropped"].get("queue_full", 0) == 2
    assert logs["failures"] >= 1 and logs["last_error"]
    assert len(list(fleet.receiver.log_records())) == before
    wait_until(
        lambda: fleet.prom.value(
            'sum(lumen_export_dropped_total{host="fleet-a", sink="otlp_logs"})'
        ) == 2,
        what="prometheus to see the drops",
    )  # fmt: skip
    assert fleet.prom.value('sum(lumen_capture_dropped_total{host="fleet-a"})') == 0


def test_a_restarted_daemon_neither_goes_back_nor_counts_twice(fleet: Fleet) -> None:
    fleet_total = "sum(lumen:cost_usd:increase1h)"  # as the shipped recording rule defines it
    expected = fleet.db_cost()
    before = wait_until(
        lambda: (v := fleet.prom.value(fleet_total)) and abs(v - expected) <= 0.05 * expected and v,
        what="the recording rule to catch up",
    )
    b = fleet.daemons["fleet-b"]
    b_before = b.api("/api/summary")["cost_usd"]
    assert b_before > 0.15 * expected  # so counting it twice would show
    restart_s = time.time()
    b.stop()
    b.start()  # same database, same port: the counters start again at 0
    fleet.traffic("fleet-b", ["openai_chat", "openai_chat"])
    # Not re-seeded from the database: the raw counter holds only this run's calls.
    wait_until(
        lambda: fleet.prom.value('sum(lumen_requests_total{host="fleet-b"})') == 2,
        what="prometheus to scrape the restarted daemon",
    )
    expected = fleet.db_cost()
    after = wait_until(
        lambda: (v := fleet.prom.value(fleet_total)) and abs(v - expected) <= 0.05 * expected and v,
        timeout_s=30,
        what=f"the fleet total to reach {expected} (not {expected + b_before})",
    )
    assert after >= before * 0.98  # never backwards (beyond increase()'s extrapolation)
    assert after < expected + 0.5 * b_before  # and B's history was not counted twice
    # Second by second across the restart, too: no dip while B is down or just back.
    seen = fleet.prom.range_values(fleet_total, restart_s - 2, time.time())
    assert len(seen) >= 5
    # increase() extrapolates to its window's edges, so its value wobbles by a few
    # percent with scrape timing (more on a loaded machine); a reset counted as a
    # drop, or B's history lost, would be a fall of B's whole share (~1/3).
    for earlier, later in itertools.pairwise(seen):
        assert later >= earlier * 0.95, seen
