"""Bytes copied from a non-LLM 64 MiB upload with BOTH ends hooked, per connection end.

``bench/daemon.py``'s "upload: copied" row is the daemon's whole-machine counter
over the upload, so other TLS traffic on a shared machine adds to it. This runs the
capture the tests use (the daemon's path needles and copy budget) on two cgroups
only: the TLS stand-in (a Python ``asyncio`` server: its side starts with
``SSL_read`` of the request) and the bulk client's ``PUT /bucket/backup-0001.tar``
(host ``objects.internal``) of ``--mib`` MiB in 16 KiB writes; prints what each
end's connection copied per direction, and the budget's skipped bytes.
Run as root: ``.venv/bin/python bench/uploadcopy.py [--mib 64]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lumen_sniff.model import Direction
from tests.support.bpfcap import REPO, TestCgroup, shared_capture, spawn_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    collector = shared_capture()
    server_cg, client_cg = TestCgroup(), TestCgroup()
    collector.watch(server_cg.cgroup_id)
    collector.watch(client_cg.cgroup_id)
    try:
        with tempfile.TemporaryDirectory() as ca_dir, spawn_server(
            "tests.support.standin", "--tls", "--port", "0", "--ca-dir", ca_dir,
            wrap=server_cg.argv,
        ) as server:  # fmt: skip
            before = collector.capture.budget_skipped()
            argv = [sys.executable, "-m", "tests.support.bulkclient", "--port",
                    str(server.info["port"]), "--ca", str(server.info["ca"]),
                    "--put-kib", str(args.mib << 10), "--host", "objects.internal"]  # fmt: skip
            run = subprocess.run(client_cg.argv(*argv), capture_output=True, text=True,
                                 timeout=600, cwd=REPO, check=True)  # fmt: skip
            result = json.loads(run.stdout.strip().splitlines()[-1])
            ends = {int(result["pid"]): "client", server.proc.pid: "server"}
            chunks = collector.wait_for(
                lambda cs: sum(1 for c in cs if c.closed) >= 2, of=lambda c: c.conn.pid in ends
            )
            skipped = collector.capture.budget_skipped()["bytes"] - before["bytes"]
    finally:
        server_cg.remove()
        client_cg.remove()
    total = 0
    for pid, who in ends.items():
        ours = [c for c in chunks if c.conn.pid == pid]
        out = sum(len(c.data) for c in ours if c.direction is Direction.EGRESS)
        got = sum(len(c.data) for c in ours if c.direction is Direction.INGRESS)
        total += out + got
        records = sum(1 for c in ours if c.data)
        print(f"{who:6s} end: egress {out} B, ingress {got} B, {records} records")
    print(f"{args.mib} MiB non-LLM PUT, both ends hooked: copied {total / 1024:.1f} KiB; "
          f"budget skipped {skipped / 2**20:.1f} MiB; statuses {result['statuses']}; "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
