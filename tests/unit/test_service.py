"""service_name: systemd unit, else container, else command line, else exe (table-driven)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lumen_sniff.capture.containers import container_info
from lumen_sniff.capture.service import ContainerInfo, command_name, service_name

CID = "4f" * 32
POD_UID = "0b6e4f0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
NONE = ContainerInfo()

CMDLINES = [
    (["python", "-m", "app.worker"], "app.worker"),
    (["/usr/bin/python3.11", "-u", "-X", "dev", "-m", "app.worker", "--queue", "q"], "app.worker"),
    (["python3", "-mapp.worker"], "app.worker"),
    (["python3", "/srv/bots/summarise.py", "--fast"], "summarise.py"),
    (["python3", "-c", "import x"], None),
    (["python3"], None),
    (["gunicorn", "-w", "4", "-b", "0.0.0.0:8000", "myapp:app"], "myapp"),
    (["gunicorn", "--bind", "localhost:8000", "myapp.wsgi:application"], "myapp.wsgi"),
    (["uvicorn", "pkg.mod:app", "--port", "9000"], "pkg.mod"),
    (["python3", "-m", "uvicorn", "pkg.mod:app"], "pkg.mod"),
    (["/venv/bin/python", "/venv/bin/gunicorn", "myapp:create_app()"], "myapp"),
    (["node", "server.js"], "server.js"),
    (["node", "--inspect", "/srv/api/dist/server.js"], "server.js"),
    (["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "-p", "hi"], "claude"),
    (["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js", "exec"], "codex"),
    (["claude", "-p", "hello"], "claude"),
    (["bun", "run", "fetch.ts"], "fetch.ts"),
    (["java", "-cp", "/tmp/x", "Probe"], "Probe"),
    (["java", "-Xmx1g", "-jar", "/opt/svc/billing.jar"], "billing.jar"),
    (["java", "Client.java"], "Client.java"),
    (["/usr/bin/curl", "https://x"], None),
    ([], None),
]


@pytest.mark.parametrize(("argv", "expected"), CMDLINES)
def test_command_line_names_the_program(argv: list[str], expected: str | None) -> None:
    assert command_name(argv) == expected


@pytest.mark.parametrize(
    ("unit", "cgroup", "container", "argv", "exe", "comm", "expected"),
    [
        # systemd service first, even when the command line names something
        (
            "billing.service",
            "/system.slice/billing.service",
            NONE,
            ["python", "-m", "app.worker"],
            "/usr/bin/python3.11",
            "python3",
            "billing",
        ),
        (
            "worker@3.service",
            "/system.slice/system-worker.slice/worker@3.service",
            NONE,
            ["python3", "w.py"],
            None,
            "python3",
            "worker@3",
        ),
        # a login session or the user manager is not a service
        (
            "session-4.scope",
            "/user.slice/user-0.slice/session-4.scope",
            NONE,
            ["python", "-m", "app.worker"],
            None,
            "python",
            "app.worker",
        ),
        (
            "user@1000.service",
            "/user.slice/user-1000.slice/user@1000.service/app.slice",
            NONE,
            ["node", "server.js"],
            None,
            "node",
            "server.js",
        ),
        # containers: docker name, bare id, Kubernetes pod/container
        (
            None,
            f"/system.slice/docker-{CID}.scope",
            ContainerInfo(container_id=CID, name="/api"),
            ["python", "-m", "app.worker"],
            None,
            "python",
            "api",
        ),
        (
            None,
            f"/docker/{CID}",
            ContainerInfo(container_id=CID),
            ["node", "server.js"],
            None,
            "node",
            CID[:12],
        ),
        (
            None,
            f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope",
            ContainerInfo(container_id=CID, name="agent", pod="agent-7d9f-x2"),
            ["python", "-m", "app.worker"],
            None,
            "python",
            "agent-7d9f-x2/agent",
        ),
        (
            None,
            f"/kubepods/burstable/pod{POD_UID}/{CID}",
            ContainerInfo(container_id=CID),
            ["python", "-m", "app.worker"],
            None,
            "python",
            f"pod-0b6e4f0a/{CID[:12]}",
        ),
        # command line, then exe basename, then comm
        (None, "/", NONE, ["gunicorn", "myapp:app"], "/usr/bin/python3.11", "gunicorn", "myapp"),
        (
            None,
            "/",
            NONE,
            ["/usr/local/bin/claude", "-p", "x"],
            "/opt/claude/bin/claude.exe",
            "claude",
            "claude",
        ),
        (None, "/", NONE, ["curl", "https://x"], "/usr/bin/curl", "curl", "curl"),
        (None, "/", NONE, [], None, "kworker", "kworker"),
        (None, "", NONE, [], None, "", None),
    ],
)
def test_service_name_order(
    unit: str | None,
    cgroup: str,
    container: ContainerInfo,
    argv: list[str],
    exe: str | None,
    comm: str,
    expected: str | None,
) -> None:
    got = service_name(
        unit=unit, cgroup_path=cgroup, container=container, argv=argv, exe=exe, comm=comm
    )
    assert got == expected


def test_service_name_is_bounded() -> None:
    got = service_name(
        unit=None,
        cgroup_path="/",
        container=NONE,
        argv=["python", "-m", "a" * 200],
        exe=None,
        comm="python",
    )
    assert got == "a" * 64


def test_container_names_come_from_runtime_state(tmp_path: Path) -> None:
    k8s = tmp_path / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{CID}"
    k8s.mkdir(parents=True)
    (k8s / "config.json").write_text(
        json.dumps(
            {
                "annotations": {
                    "io.kubernetes.cri.container-name": "agent",
                    "io.kubernetes.cri.sandbox-name": "agent-7d9f-x2",
                }
            }
        )
    )
    assert container_info(CID, root=tmp_path) == ContainerInfo(
        container_id=CID, name="agent", pod="agent-7d9f-x2"
    )
    other = "5a" * 32
    docker = tmp_path / f"var/lib/docker/containers/{other}"
    docker.mkdir(parents=True)
    (docker / "config.v2.json").write_text(json.dumps({"Name": "/billing", "Config": {}}))
    assert container_info(other, root=tmp_path).name == "billing"
    (docker / "config.v2.json").write_text("{not json")
    assert container_info(other, root=tmp_path) == ContainerInfo(container_id=other)
    assert container_info(None, root=tmp_path) == ContainerInfo()
