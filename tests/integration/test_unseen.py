"""Who spent it, and who could not be seen, through the daemon.

Service names: a client in a ``.service`` cgroup is named after the service;
one in a scope, after the module its command line runs.

Blind spots: a Java HttpClient (JSSE: nothing native to hook)
calls the stand-in as api.openai.com, and the daemon reports it as unseen, with its
host, process, service and reason, in /api/status and /metrics. A hooked client
(Python's ssl) calling the same host the same way is not reported.

The host name is mapped to 127.0.0.1 in a private mount namespace (``unshare -m``
with a bind-mounted hosts file), so the client's ClientHello carries the real
API host name as its SNI while the traffic never leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import require_or_skip
from tests.support.bpfcap import CGROUP_ROOT, REPO, Server, bpf_ready, spawn_server
from tests.support.daemonproc import Daemon, start_daemon, stop_daemon

pytestmark = [pytest.mark.bpf, pytest.mark.slow]

HOST = "api.openai.com"
JAVA_CLASS = "LumenUnseenProbe"
JAVA_SOURCE = """
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class LumenUnseenProbe {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(args[0]))
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-test-java-unseen-0000")
            .POST(HttpRequest.BodyPublishers.ofString(
                "{\\"model\\":\\"gpt-4o-mini\\",\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"hi\\"}]}"))
            .build();
        HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
        System.out.println(response.statusCode() + " " + response.body().length());
    }
}
"""


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    ok, why = bpf_ready()
    require_or_skip(ok, why)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "none.toml").write_text("")
        (path / "hosts").write_text(f"127.0.0.1 localhost\n127.0.0.1 {HOST}\n")
        yield path


@pytest.fixture(scope="module")
def standin(workdir: Path) -> Iterator[Server]:
    with spawn_server(
        "tests.support.standin", "--tls", "--port", "0", "--ca-dir", str(workdir)
    ) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    running = start_daemon(workdir / "state" / "lumen.db", workdir / "daemon.log")
    yield running
    if running.proc.poll() is None:
        stop_daemon(running)


@pytest.fixture(scope="module")
def java_client(workdir: Path, standin: Server) -> Path:
    """The compiled client and a truststore holding the stand-in's CA."""
    (workdir / f"{JAVA_CLASS}.java").write_text(JAVA_SOURCE)
    subprocess.run(
        ["javac", "-d", str(workdir), str(workdir / f"{JAVA_CLASS}.java")], check=True, timeout=120
    )
    subprocess.run(
        ["keytool", "-importcert", "-noprompt", "-alias", "standin",
         "-file", str(standin.info["ca"]), "-keystore", str(workdir / "trust.p12"),
         "-storetype", "PKCS12", "-storepass", "changeit"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return workdir


def _in_private_hosts(workdir: Path, *cmd: str) -> list[str]:
    """``cmd`` run where /etc/hosts maps the API host to 127.0.0.1 (a private mount ns)."""
    script = f'mount --bind {workdir / "hosts"} /etc/hosts && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh", *cmd]


def _api_url(standin: Server) -> str:
    port = str(standin.info["base_url"]).rsplit(":", 1)[1]
    return f"https://{HOST}:{port}"


def _wait_for(daemon: Daemon, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = daemon.api("/api/status")
        if found(status):
            return status
        time.sleep(0.3)
    raise AssertionError(
        f"not in /api/status: {status.get('unseen')}; {daemon.log.read_text()[-3000:]}"
    )


def test_java_httpclient_is_reported_unseen(
    daemon: Daemon, standin: Server, java_client: Path
) -> None:
    run = subprocess.run(
        _in_private_hosts(
            java_client,
            "java",
            f"-Djavax.net.ssl.trustStore={java_client / 'trust.p12'}",
            "-Djavax.net.ssl.trustStorePassword=changeit",
            "-Djavax.net.ssl.trustStoreType=PKCS12",
            "-cp",
            str(java_client),
            JAVA_CLASS,
            _api_url(standin) + "/v1/chat/completions",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("200 "), run.stdout

    def mine(status: dict[str, Any]) -> bool:
        return any(r["service"] == JAVA_CLASS for r in status["unseen"])

    status = _wait_for(daemon, mine)
    (row,) = [r for r in status["unseen"] if r["service"] == JAVA_CLASS]
    assert row["host"] == HOST
    assert row["provider"] == "openai"
    assert row["process"] == "java"
    assert row["exe"] and row["exe"].endswith("/java")
    assert row["reason"].startswith("Java JSSE not supported")
    assert row["connections"] == 1
    assert row["bytes_sent"] > 200 and row["bytes_received"] > 200  # handshake + call
    assert row["first_seen"] <= row["last_seen"]
    # Nothing was read, so nothing was stored.
    assert not [
        e for e in daemon.api("/api/events", limit=1000)["events"] if e["service"] == JAVA_CLASS
    ]

    response = httpx.get(daemon.url + "/metrics", timeout=10)
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {
        tuple(sorted(s.labels.items())): s.value
        for s in families["lumen_unseen_connections"].samples
        if s.name == "lumen_unseen_connections_total"
    }
    assert samples[(("host", HOST), ("process", "java"))] >= 1

    # The CLI says it too: top's unseen table and one doctor finding per blind spot.
    env = {**os.environ, "COLUMNS": "250"}
    for command in (["top", "--once"], ["doctor"]):
        shown = subprocess.run(
            [sys.executable, "-m", "lumen_sniff", *command, "--api", daemon.url],
            capture_output=True, text=True, timeout=180, cwd=REPO, env=env, check=False,
        )  # fmt: skip
        assert HOST in shown.stdout and "Java JSSE not supported" in shown.stdout, shown
        assert JAVA_CLASS in shown.stdout, shown.stdout


def test_a_hooked_client_to_the_same_host_is_not_unseen(
    daemon: Daemon, standin: Server, workdir: Path
) -> None:
    proc = subprocess.Popen(
        _in_private_hosts(
            workdir,
            sys.executable, "-m", "tests.support.clients", "openai_chat",
            "--base-url", _api_url(standin), "--ca", str(standin.info["ca"]),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]

    def stored(status: dict[str, Any]) -> bool:
        events = daemon.api("/api/events", limit=1000)["events"]
        return any(e["pid"] == proc.pid for e in events)

    _wait_for(daemon, stored)
    time.sleep(2.5)  # past the judgement's grace after the connection closed
    status = daemon.api("/api/status")
    assert not [r for r in status["unseen"] if proc.pid in r["pids"]], status["unseen"]
    counters = status["capture"]["backends"]["BpfCapture"]["blind_spots"]["counters"]
    assert counters["seen"] >= 1


@pytest.mark.parametrize(
    ("cgroup", "expected"),
    [
        # A systemd service names the caller, before its command line...
        ("lumen-svc-{id}.service", "lumen-svc-{id}"),
        # ...a login-session-like scope does not: the command line does.
        ("lumen-scope-{id}.scope", "tests.support.clients"),
    ],
)
def test_events_name_their_service(
    daemon: Daemon, standin: Server, cgroup: str, expected: str
) -> None:
    unique = uuid.uuid4().hex[:10]
    path = CGROUP_ROOT / cgroup.format(id=unique)
    path.mkdir()
    try:
        argv = [
            sys.executable, "-m", "tests.support.clients", "openai_chat",
            "--base-url", str(standin.info["base_url"]), "--ca", str(standin.info["ca"]),
        ]  # fmt: skip
        joined = ["/bin/sh", "-c", f'echo $$ > {path}/cgroup.procs && exec "$@"', "sh", *argv]
        run = subprocess.run(joined, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert run.returncode == 0, run.stderr[-2000:]
        usage = json.loads(run.stdout.strip().splitlines()[-1])["usage"]
        name = expected.format(id=unique)
        deadline = time.monotonic() + 20
        events: list[dict[str, Any]] = []
        while not events and time.monotonic() < deadline:
            events = daemon.api("/api/events", service=name, limit=100)["events"]
            time.sleep(0.2)
        events = [e for e in events if e["unit"] == path.name]
    finally:
        for _ in range(100):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.05)
    (event,) = events
    assert event["service"] == name
    assert event["input_tokens"] == usage["input_tokens"]
    assert event["output_tokens"] == usage["output_tokens"]
    grouped = daemon.api("/api/usage", group_by="service", bucket="hour", since="1h")
    assert name in {s["group"] for s in grouped["series"]}
