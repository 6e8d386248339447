"""Peak fill of a running daemon's BPF ring buffers, sampled from outside the daemon.

A BPF ring buffer's first page holds the consumer position and its second the
producer position (``kernel/bpf/ringbuf.c``); both are mappable by any holder of
the map's fd. This script finds the daemon's ring buffer maps in
``/proc/PID/fdinfo`` (``map_type: 27``), opens each by id with ``bpf(2)``
(``BPF_MAP_GET_FD_BY_ID``), maps those two pages read-only and samples
``producer - consumer`` (bytes written and not yet read) every ``--every-ms``.

Run as root while the daemon is under load (say ``bench/daemon.py`` in another
shell): ``.venv/bin/python bench/ringfill.py PID [--seconds 60]``. Prints, per
ring buffer: its size, the peak fill in bytes and as a share of the size, and
the 99th-percentile fill. The ring buffer must hold the largest burst the reader
falls behind by; ``ring_buffer_bytes`` in ``[capture]`` sets it.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import struct
import time
from pathlib import Path

_SYS_BPF = 321  # x86-64
_BPF_MAP_GET_FD_BY_ID = 14
_MAP_TYPE_RINGBUF = 27


def _ringbufs(pid: int) -> dict[int, int]:
    """map id -> max_entries (bytes) of every ring buffer ``pid`` holds."""
    found: dict[int, int] = {}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            fields = dict(
                line.split(":", 1) for line in info.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if fields.get("map_type", "").strip() == str(_MAP_TYPE_RINGBUF):
            found[int(fields["map_id"])] = int(fields["max_entries"])
    return found


def _open_map(map_id: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(struct.pack("<III", map_id, 0, 0), 128)
    fd = libc.syscall(_SYS_BPF, _BPF_MAP_GET_FD_BY_ID, attr, 128)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"BPF_MAP_GET_FD_BY_ID {map_id}")
    return int(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every-ms", type=float, default=1.0)
    args = parser.parse_args()
    page = mmap.PAGESIZE
    rings = []
    for map_id, size in _ringbufs(args.pid).items():
        fd = _open_map(map_id)
        consumer = mmap.mmap(fd, page, prot=mmap.PROT_READ, offset=0)
        producer = mmap.mmap(fd, page, prot=mmap.PROT_READ, offset=page)
        rings.append((map_id, size, consumer, producer, []))
    if not rings:
        raise SystemExit(f"pid {args.pid} holds no ring buffer")
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        for _id, _size, consumer, producer, samples in rings:
            (cons,) = struct.unpack_from("<Q", consumer, 0)
            (prod,) = struct.unpack_from("<Q", producer, 0)
            samples.append(max(0, prod - cons))
        time.sleep(args.every_ms / 1000)
    for map_id, size, _c, _p, samples in rings:
        samples.sort()
        peak, p99 = samples[-1], samples[int(0.99 * (len(samples) - 1))]
        print(
            f"ring buffer map {map_id}: {size >> 10} KiB, peak fill {peak} B "
            f"({100 * peak / size:.2f} %), p99 {p99} B, {len(samples)} samples"
        )
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
