"""Ring-buffer records from ``bpf/lumen.h``, mirrored with ctypes and decoded.

The C header is the contract; :class:`RecordHeader` copies its layout field by
field (not packed, natural alignment), and ``tests/unit/test_bpf_layout.py``
compiles the header and compares sizes and offsets. Decoding is pure: bytes in,
a :class:`Record` out. It runs once per ring-buffer record, so it reads the header
with :data:`HEADER_STRUCT` (a ``struct`` format derived from :class:`RecordHeader`'s
offsets, checked by the tests) instead of building a ctypes object per record.
Turning records into :class:`lumen_sniff.model.Chunk` needs the process metadata
and the clock offset, which the loader passes in.
"""

from __future__ import annotations

import ctypes
import enum
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumen_sniff.model import Chunk, ConnKey, Direction, ProcessInfo

__all__ = [
    "COMM_LEN",
    "DROP_REASONS",
    "HEADER_PATH",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "PATH_ANYWHERE",
    "PATH_AT_START",
    "PATH_BYTES",
    "ConnStruct",
    "DropStruct",
    "Kind",
    "PathKeyStruct",
    "Record",
    "RecordFields",
    "RecordHeader",
    "conn_struct",
    "decode",
    "decode_fields",
    "decode_fields_at",
    "make_chunk",
    "read_drops",
    "record_of",
    "to_chunk",
]

HEADER_PATH = Path(__file__).resolve().parents[3] / "bpf" / "lumen.h"
"""The C header this module mirrors."""

COMM_LEN = 16
"""LUMEN_COMM_LEN."""

DROP_REASONS = ("ringbuf_full", "cap_exceeded", "read_failed", "budget")
"""Names of the BPF drop counters, in LUMEN_DROP_* index order. ``budget`` is
not a loss: bytes of a connection judged not LLM, past its copy budget."""

PATH_BYTES = 32
"""LUMEN_PATH_BYTES: the longest path needle the kernel matches."""
PATH_AT_START = 1
"""LUMEN_PATH_AT_START: the needle matches at the start of the path only."""
PATH_ANYWHERE = 2
"""LUMEN_PATH_ANYWHERE: the needle matches at any '/' of the path."""


class Kind(enum.IntEnum):
    """``lumen_record.kind`` (LUMEN_KIND_*)."""

    DATA = 0
    CLOSE = 1
    EXEC = 2
    MMAP = 3
    EXIT = 4


class RecordHeader(ctypes.Structure):
    """``struct lumen_record`` without its trailing payload."""

    _fields_ = [  # noqa: RUF012 - ctypes wants a plain list
        ("ts_ns", ctypes.c_uint64),
        ("ssl", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("lost_bytes", ctypes.c_uint64),
        ("cgroup_id", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("data_len", ctypes.c_uint32),
        ("kind", ctypes.c_uint8),
        ("direction", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 6),
        ("comm", ctypes.c_char * COMM_LEN),
    ]


class ConnStruct(ctypes.Structure):
    """``struct lumen_conn``: the (tgid, SSL*) key of the offsets and ignored maps."""

    _fields_ = [  # noqa: RUF012
        ("pid", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("ssl", ctypes.c_uint64),
    ]


class PathKeyStruct(ctypes.Structure):
    """``struct lumen_path_key``: a key of the ``lumen_paths`` LPM trie."""

    _fields_ = [  # noqa: RUF012
        ("prefixlen", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * PATH_BYTES),
    ]


class DropStruct(ctypes.Structure):
    """``struct lumen_drop``: one drop counter."""

    _fields_ = [  # noqa: RUF012
        ("records", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
    ]


HEADER_SIZE = ctypes.sizeof(RecordHeader)

_STRUCT_CODES: dict[object, str] = {
    ctypes.c_uint64: "Q",
    ctypes.c_uint32: "I",
    ctypes.c_uint8: "B",
}


def _header_struct() -> struct.Struct:
    """``RecordHeader`` as a ``struct`` format, fields at ctypes' offsets, padding skipped."""
    fmt, at = "<", 0
    for name, ctype, *_ in RecordHeader._fields_:
        field = getattr(RecordHeader, name)
        fmt += "x" * (field.offset - at)
        if name == "pad":
            fmt += f"{field.size}x"
        elif ctype in _STRUCT_CODES:
            fmt += _STRUCT_CODES[ctype]
        else:  # the char array: comm
            fmt += f"{field.size}s"
        at = field.offset + field.size
    return struct.Struct(fmt + "x" * (HEADER_SIZE - at))


HEADER_STRUCT = _header_struct()
"""The header's fields in ``_fields_`` order without ``pad``: one ``unpack_from`` per record."""

_KINDS = {kind.value: kind for kind in Kind}
_DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
_COMMS: dict[bytes, str] = {}
"""Decoded comm per raw 16 bytes: a handful of programs make nearly every record."""


def read_drops(table: Any) -> dict[str, dict[str, int]]:
    """The per-CPU ``lumen_drops`` counters summed: reason → ``records`` and ``bytes``.

    Args:
        table: The bcc-style table (``table[index]`` gives one value per CPU), or None.
    """
    out = {reason: {"records": 0, "bytes": 0} for reason in DROP_REASONS}
    if table is not None:
        for index, reason in enumerate(DROP_REASONS):
            for cpu_value in table[ctypes.c_int(index)]:
                out[reason]["records"] += cpu_value.records
                out[reason]["bytes"] += cpu_value.bytes
    return out


def conn_struct(conn: ConnKey) -> ConnStruct:
    """The BPF map key for a connection."""
    return ConnStruct(pid=conn.pid, pad=0, ssl=conn.handle)


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """One decoded ring-buffer record."""

    kind: Kind
    """What happened."""
    ts_ns: int
    """Kernel CLOCK_MONOTONIC time."""
    pid: int
    """tgid."""
    tid: int
    """Thread id."""
    uid: int
    """Real uid."""
    cgroup_id: int
    """cgroup v2 id."""
    comm: str
    """The process leader's comm."""
    ssl: int = 0
    """The SSL* (data and close records)."""
    direction: Direction = Direction.EGRESS
    """Which way the bytes moved."""
    offset: int = 0
    """Position of ``data[0]`` in the direction's stream."""
    lost_bytes: int = 0
    """Bytes after ``data`` in the same call that were not copied."""
    data: bytes = b""
    """Payload."""


RecordFields = tuple[Kind, int, int, int, int, int, str, int, Direction, int, int, bytes]
"""A record's fields in :class:`Record`'s order (kind, ts_ns, pid, tid, uid, cgroup_id,
comm, ssl, direction, offset, lost_bytes, data): what the loader's per-record path
reads, without building a Record."""


def decode_fields(raw: bytes) -> RecordFields | None:
    """Decode one ring-buffer record into its fields; None when it is malformed.

    Args:
        raw: The record's bytes, header then payload.

    Returns:
        The fields, or None if the record is shorter than its header says or of
        unknown kind or direction.
    """
    return decode_fields_at(raw, 0, len(raw))


def decode_fields_at(buf: bytes | mmap.mmap, at: int, size: int) -> RecordFields | None:
    """:func:`decode_fields` of the ``size`` bytes at ``at`` in ``buf`` (the ring's mapping).

    ``buf[a:b]`` must give ``bytes`` (``bytes`` and ``mmap`` do): the payload is
    copied out, because the ring space is reused once the batch is handled.
    """
    if size < HEADER_SIZE:
        return None
    (
        ts_ns,
        ssl,
        offset,
        lost_bytes,
        cgroup_id,
        pid,
        tid,
        uid,
        data_len,
        kind_value,
        direction,
        raw_comm,
    ) = HEADER_STRUCT.unpack_from(buf, at)
    kind = _KINDS.get(kind_value)
    if HEADER_SIZE + data_len > size or direction > 1 or kind is None:
        return None
    comm = _COMMS.get(raw_comm)
    if comm is None:
        # ctypes' c_char array stopped at the first NUL; so does this.
        comm = raw_comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        if len(_COMMS) > 4096:
            _COMMS.clear()
        _COMMS[raw_comm] = comm
    return (
        kind,
        ts_ns,
        pid,
        tid,
        uid,
        cgroup_id,
        comm,
        ssl,
        _DIRECTIONS[direction],
        offset,
        lost_bytes,
        buf[at + HEADER_SIZE : at + HEADER_SIZE + data_len],
    )


def decode(raw: bytes) -> Record | None:
    """Decode one ring-buffer record; None when it is malformed.

    Args:
        raw: The record's bytes, header then payload.

    Returns:
        The record, or None if it is shorter than its header says or of unknown kind.
    """
    fields = decode_fields(raw)
    return None if fields is None else record_of(fields)


def record_of(fields: RecordFields) -> Record:
    """The :class:`Record` of decoded fields."""
    kind, ts_ns, pid, tid, uid, cgroup_id, comm, ssl, direction, offset, lost, data = fields
    return Record(
        kind=kind,
        ts_ns=ts_ns,
        pid=pid,
        tid=tid,
        uid=uid,
        cgroup_id=cgroup_id,
        comm=comm,
        ssl=ssl,
        direction=direction,
        offset=offset,
        lost_bytes=lost,
        data=data,
    )


def make_chunk(fields: RecordFields, *, wall_offset_ns: int, process: ProcessInfo | None) -> Chunk:
    """Turn a data or close record's fields into a Chunk (see :func:`to_chunk`)."""
    kind, ts_ns, pid, _, _, _, _, ssl, direction, offset, lost_bytes, data = fields
    return Chunk(
        conn=ConnKey(source="bpf", pid=pid, handle=ssl),
        direction=direction,
        offset=offset,
        ts_ns=ts_ns + wall_offset_ns,
        data=data,
        lost_bytes=lost_bytes,
        closed=kind is Kind.CLOSE,
        process=process,
    )


def to_chunk(record: Record, *, wall_offset_ns: int, process: ProcessInfo | None) -> Chunk:
    """Turn a data or close record into a Chunk.

    Args:
        record: A record of kind DATA or CLOSE.
        wall_offset_ns: Wall clock minus CLOCK_MONOTONIC, in nanoseconds.
        process: Process metadata to attach.

    Returns:
        The Chunk, with a wall-clock timestamp.
    """
    r = record
    fields = (
        r.kind,
        r.ts_ns,
        r.pid,
        r.tid,
        r.uid,
        r.cgroup_id,
        r.comm,
        r.ssl,
        r.direction,
        r.offset,
        r.lost_bytes,
        r.data,
    )
    return make_chunk(fields, wall_offset_ns=wall_offset_ns, process=process)
