"""The Go arm of ``bench/overhead.py``: what the crypto/tls probes cost a Go program.

Same method, server, workloads and table as ``bench/overhead.py`` (read its
docstring); only the client differs: ``bench/gobench/main.go``, built here with
Debian's Go, calls ``(*tls.Conn).Write`` and ``(*tls.Conn).Read`` where the
Python client calls ``SSL_write`` and ``SSL_read``. The arms:

- ``none``: nothing attached to the Go binary;
- ``floor``: empty programs at the very points lumen-sniff uses (the entry and
  every RET of Write and Read, the entry of Close): the price of the uprobes;
- ``lumen``: the real Go handlers, the connections judged not LLM traffic by the
  real Pipeline, so the ignore map stops the copy.

Every other file the captures hook at start (system libssl, libgnutls, other Go
programs) is detached, so only the Go client's probes change between arms.

Run as root: ``.venv/bin/python bench/overhead_go.py [--rounds 30] [--batches 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import overhead  # bench/overhead.py: server, measurement and report

from lumen_sniff.capture.bpf.elf import elf_facts
from lumen_sniff.capture.bpf.libraries import TLS_SYMBOLS, library_named
from lumen_sniff.capture.bpf.libraries.golang import GOLANG
from lumen_sniff.capture.bpf.tlslib import AttachPoint

_SOURCE = Path(__file__).resolve().parent / "gobench" / "main.go"


def _points(path: str) -> list[AttachPoint]:
    facts = elf_facts(path, TLS_SYMBOLS)
    if facts is None or GOLANG.judge(GOLANG, facts):
        raise RuntimeError(f"the Go row refuses {path}")
    return list(GOLANG.locate(GOLANG, path, facts))


def _switch(cap: Any, points: list[AttachPoint], *, on: bool) -> None:
    bpf = cap._bpf
    for p in points:
        where: dict[str, Any] = {"sym": p.sym.encode()} if p.sym else {"addr": p.addr}
        if on:
            attach = bpf.attach_uretprobe if p.ret else bpf.attach_uprobe
            attach(name=p.path.encode(), fn_name=p.fn_name.encode(), **where)
        else:
            detach = bpf.detach_uretprobe if p.ret else bpf.detach_uprobe
            detach(name=p.path.encode(), **where)


class _GoArms(overhead._Arms):
    """overhead.py's arms, switching the Go client's entry and RET probes instead."""

    def __init__(self, exclude: int, binary: str) -> None:
        super().__init__(exclude, lib="")  # starts both captures, detaches OpenSSL
        for cap in self.caps.values():
            for target in list(cap._discovery.files.values()):
                if target.library and target.library != "openssl" and target.facts:
                    row = library_named(target.library)
                    _switch(cap, list(row.locate(row, target.path, target.facts)), on=False)
        self._points = _points(binary)

    def set(self, arm: str, *, on: bool) -> None:
        if arm != "none":
            _switch(self.caps[arm], self._points, on=on)


def _build(workdir: Path) -> Path:
    out = workdir / "gobench"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(HOME=str(workdir), GOPATH=str(workdir / "gopath"),
               GOCACHE=str(workdir / "gocache"), GO111MODULE="off", GOPROXY="off")  # fmt: skip
    subprocess.run(["go", "build", "-o", str(out), str(_SOURCE)], check=True, env=env)
    return out


def main() -> int:
    """Run the Go arm and print overhead.py's table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30, help="ABC blocks (rotating order)")
    parser.add_argument("--batches", type=int, default=3, help="batches per workload per block")
    parser.add_argument("--bulk-mib", type=int, default=32, help="MiB per bulk download")
    parser.add_argument("--json", type=Path, help="also write the raw batch figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/overhead_go.py needs root (eBPF)", file=sys.stderr)
        return 2
    import trustme

    workdir = Path(tempfile.mkdtemp(prefix="lumen-bench-go-"))
    procs: list[subprocess.Popen[str]] = []
    arms: _GoArms | None = None
    try:
        binary = _build(workdir)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
            str(workdir / "server.pem")
        )
        _lib, env = overhead._private_libssl(workdir / "server")
        server = overhead._spawn(["--server", str(workdir)], env=env)
        procs.append(server)
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        cpu = str(overhead._CLIENT_CPU)
        argv = ["taskset", "-c", cpu, str(binary), str(ports["tls"]), str(ports["ctl"])]
        client = subprocess.Popen([*argv, str(workdir / "ca.pem")], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        procs.append(client)
        overhead._ask(client, {"op": "ping"})
        arms = _GoArms(server.pid, str(binary))
        names = [f"{k}-{s}" for s in overhead.SIZES for k in ("sink", "src")] + ["src-bulk"]
        arms.set("lumen", on=True)  # the pipeline judges every connection, once
        overhead._ask(client, {"op": "open", "names": names})
        deadline = time.monotonic() + 15
        while arms.ignored < len(names) and time.monotonic() < deadline:
            time.sleep(0.05)
        arms.set("lumen", on=False)
        results = overhead._measure(client, arms, args)
        facts = {**arms.stop(), "ignored": arms.ignored, "conns": len(names)}
        arms = None
    finally:
        if arms is not None:
            arms.stop()
        for proc in procs:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "facts": facts}))
    print("\nGo crypto/tls client ((*tls.Conn).Write / Read; probes at entry and every RET)")
    overhead._report(results, facts, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
