"""Load recorded exchanges (fixtures/exchanges/*.json) as Chunks plus expected usage.

The file format is described in fixtures/README.md. Directions are named from
the client's side: ``egress`` is what the client wrote (SSL_write), ``ingress``
what it read, so the Chunks look like an eBPF capture of the client process.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from lumen_sniff.model import Chunk, ConnKey, Direction, ProcessInfo

__all__ = ["EXCHANGES_DIR", "FIXTURE_PID", "load_exchange", "semantic_view"]

FIXTURE_PID = 4242
"""pid given to the client process of every fixture."""
EXCHANGES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "exchanges"
"""Where the committed fixtures live."""


def load_exchange(path: str | Path) -> tuple[list[Chunk], dict[str, Any]]:
    """Read one fixture.

    Args:
        path: A fixtures/exchanges/<scenario>.json file.

    Returns:
        The Chunks in capture order (``source="replay"``, one ``handle`` per
        connection, the last chunk of each connection ``closed``), and the
        ``expected`` dict: normalised token counts (None when the client saw no
        usage), model, stream, status, error, calls.
    """
    doc = json.loads(Path(path).read_text())
    process = ProcessInfo(pid=FIXTURE_PID, tid=FIXTURE_PID, comm=str(doc.get("comm", "")))
    chunks = []
    for raw in doc["chunks"]:
        chunks.append(Chunk(
            conn=ConnKey(source="replay", pid=FIXTURE_PID, handle=int(raw.get("conn", 1))),
            direction=Direction.EGRESS if raw["direction"] == "egress" else Direction.INGRESS,
            offset=int(raw["offset"]),
            ts_ns=int(raw["ts_ns"]),
            data=base64.b64decode(raw["data_b64"]),
            closed=bool(raw.get("closed", False)),
            process=process,
            peer=("127.0.0.1", int(doc.get("port", 443))),
        ))
    return chunks, dict(doc["expected"])


def _h2_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    frames = []
    if data.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        data = data[24:]
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        frames.append((ftype, flags, sid, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames


def semantic_view(doc: dict[str, Any]) -> dict[str, Any]:
    """What must not drift between two recordings of a scenario.

    HTTP/1.1: each connection's byte stream per direction and the sizes of the
    server's writes (client write boundaries and all timing are not kept: the
    fixture's timestamps are synthetic anyway). HTTP/2: per direction, the
    frames of each stream in order, and the connection-level frames as a
    sorted list, because when a peer's SETTINGS ACK or WINDOW_UPDATE goes out
    relative to its other frames depends on scheduling.
    """
    conns: dict[int, dict[str, list[bytes]]] = {}
    for raw in doc["chunks"]:
        per = conns.setdefault(int(raw.get("conn", 1)), {"egress": [], "ingress": []})
        per[raw["direction"]].append(base64.b64decode(raw["data_b64"]))
    view: list[Any] = []
    for _, per in sorted(conns.items()):
        if doc.get("http_version") == "2":
            entry: dict[str, Any] = {}
            for direction, parts in per.items():
                frames = _h2_frames(b"".join(parts))
                streams: dict[int, list[str]] = {}
                for ftype, flags, sid, payload in frames:
                    if sid:
                        streams.setdefault(sid, []).append(f"{ftype}:{flags}:{payload.hex()}")
                control = sorted(f"{t}:{f}:{p.hex()}" for t, f, s, p in frames if not s)
                entry[direction] = {"control": control,
                                    "streams": {str(k): v for k, v in sorted(streams.items())}}
            view.append(entry)
        else:
            view.append({d: b"".join(p).decode("latin-1") for d, p in per.items()}
                        | {"ingress_writes": [len(p) for p in per["ingress"]]})
    view.sort(key=lambda v: json.dumps(v, sort_keys=True))
    return {k: doc.get(k) for k in ("scenario", "client", "http_version", "expected")} | {
        "connections": view}
