"""Field offsets of kernel structs, read from the running kernel's BTF.

bcc compiles against whatever kernel headers are installed, and on these machines
those are Debian's 6.1 headers under a 6.18 kernel: a ``task->group_leader->comm``
written in C would use 6.1's offsets and read garbage. bcc 0.26 loads programs
without CO-RE relocation, so the loader asks ``/sys/kernel/btf/vmlinux`` for the
few offsets it needs and passes them as ``-D`` defines.

The BTF format (``Documentation/bpf/btf.rst``) is a header, a type section and a
string section; only struct members are decoded here, every other kind is skipped
by its known trailing size.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

__all__ = ["VMLINUX_BTF", "member_offsets_bytes", "parsed_once"]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

_MAGIC = 0xEB9F
_KIND_STRUCT = 4
_KIND_UNION = 5
# Bytes that follow the 12-byte ``struct btf_type`` for each kind: (fixed, per vlen item).
_TRAILER = {
    1: (4, 0),  # INT
    3: (12, 0),  # ARRAY
    4: (0, 12),  # STRUCT
    5: (0, 12),  # UNION
    6: (0, 8),  # ENUM
    13: (0, 8),  # FUNC_PROTO
    14: (4, 0),  # VAR
    15: (0, 12),  # DATASEC
    17: (4, 0),  # DECL_TAG
    19: (0, 12),  # ENUM64
}


class _Types:
    """The type section indexed by type id; members decoded only for the types asked about.

    Decoding every struct's members of a 5 MB vmlinux BTF took about 0.5 s per
    call (and the loader and the socket program each call once at start); walking
    only the 12-byte type headers to find where each type starts takes a fraction.
    """

    def __init__(self, blob: bytes) -> None:
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != _MAGIC:
            raise ValueError("not little-endian BTF")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self.blob = blob[hdr_len + type_off : hdr_len + type_off + type_len]
        self.strings = blob[hdr_len + str_off : hdr_len + str_off + str_len]
        # Type ids start at 1; index 0 is "void". Only each header's info word is
        # read (kind and vlen give the trailer's size); nothing else is decoded.
        self.starts = starts = [-1]
        info_at = struct.Struct("<I").unpack_from
        fixed = [0] * 32
        per_item = [0] * 32
        for kind, (fix, per) in _TRAILER.items():
            fixed[kind], per_item[kind] = fix, per
        blob, pos, size = self.blob, 0, len(self.blob)
        while pos < size:
            (info,) = info_at(blob, pos + 4)
            starts.append(pos)
            kind = (info >> 24) & 0x1F
            pos += 12 + fixed[kind] + per_item[kind] * (info & 0xFFFF)

    def header(self, type_id: int) -> tuple[int, int, int]:
        """(name offset, kind, vlen) of a type."""
        if type_id <= 0 or type_id >= len(self.starts):
            return 0, 0, 0
        name_off, info, _size = struct.unpack_from("<III", self.blob, self.starts[type_id])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF

    def members(self, type_id: int) -> list[tuple[int, int, int]]:
        """(name offset, type id, bit offset) of a struct's or union's members."""
        pos = self.starts[type_id]
        _name_off, info, _size = struct.unpack_from("<III", self.blob, pos)
        kflag = info >> 31
        out = []
        for i in range(info & 0xFFFF):
            m_name, m_type, m_off = struct.unpack_from("<III", self.blob, pos + 12 + 12 * i)
            out.append((m_name, m_type, m_off & 0xFFFFFF if kflag else m_off))
        return out


_shared: dict[tuple[str, int, int, int], _Types] | None = None
"""Parsed BTF files while a :func:`parsed_once` block runs (None: parse per lookup)."""


@contextlib.contextmanager
def parsed_once() -> Iterator[None]:
    """Within the block, each BTF file is read and indexed once, however many lookups.

    A start looks up the capture's task_struct offsets and the socket program's
    tcp_sock offsets: two reads and walks of a 5 MB blob (~0.07 s each). Afterwards
    the index (several MB) is dropped, never kept for the daemon's lifetime.
    """
    global _shared
    outer = _shared
    _shared = {} if outer is None else outer
    try:
        yield
    finally:
        _shared = outer


def _types_of(path: Path) -> _Types:
    if _shared is None:
        return _Types(path.read_bytes())
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _shared:
        _shared[key] = _Types(path.read_bytes())
    return _shared[key]


def _name(strings: bytes, off: int) -> str:
    end = strings.index(b"\0", off)
    return strings[off:end].decode()


def member_offsets_bytes(
    struct_name: str, members: tuple[str, ...], btf_path: Path = VMLINUX_BTF
) -> dict[str, int]:
    """Byte offsets of ``struct_name``'s members, looking through anonymous structs/unions.

    Args:
        struct_name: e.g. ``"task_struct"``.
        members: e.g. ``("group_leader", "comm")``.
        btf_path: The BTF blob to read.

    Returns:
        Each member's offset from the start of the struct, in bytes.

    Raises:
        OSError: the BTF file cannot be read.
        KeyError: no such struct or member.
        ValueError: the file is not BTF.
    """
    types = _types_of(btf_path)
    strings = types.strings

    def find(type_id: int, member: str, base_bits: int) -> int | None:
        for m_name, m_type, bits in types.members(type_id):
            if m_name and _name(strings, m_name) == member:
                return base_bits + bits
            if not m_name and types.header(m_type)[1] in (_KIND_STRUCT, _KIND_UNION):
                found = find(m_type, member, base_bits + bits)
                if found is not None:
                    return found
        return None

    needle = b"\0" + struct_name.encode() + b"\0"
    wanted_names = set()
    pos = strings.find(needle)
    while pos != -1:
        wanted_names.add(pos + 1)
        pos = strings.find(needle, pos + 1)
    name_at = struct.Struct("<II").unpack_from
    for type_id in range(1, len(types.starts)):
        name_off, info = name_at(types.blob, types.starts[type_id])
        if name_off not in wanted_names or (info >> 24) & 0x1F != _KIND_STRUCT:
            continue
        found = {m: find(type_id, m, 0) for m in members}
        if all(v is not None for v in found.values()):
            return {m: v // 8 for m, v in found.items() if v is not None}
    raise KeyError(f"{struct_name}.{{{','.join(members)}}} not all in {btf_path}")
