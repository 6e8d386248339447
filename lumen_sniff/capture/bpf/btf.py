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

import struct
from pathlib import Path

__all__ = ["VMLINUX_BTF", "member_offsets_bytes"]

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


def _parse(blob: bytes) -> tuple[list[tuple[int, int, int, list[tuple[int, int, int]]]], bytes]:
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
    if magic != _MAGIC:
        raise ValueError("not little-endian BTF")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
    types_blob = blob[hdr_len + type_off : hdr_len + type_off + type_len]
    strings = blob[hdr_len + str_off : hdr_len + str_off + str_len]
    # Type ids start at 1; index 0 is "void".
    types: list[tuple[int, int, int, list[tuple[int, int, int]]]] = [(0, 0, 0, [])]
    pos = 0
    while pos < len(types_blob):
        name_off, info, size_or_type = struct.unpack_from("<III", types_blob, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        members: list[tuple[int, int, int]] = []
        if kind in (_KIND_STRUCT, _KIND_UNION):
            kflag = info >> 31
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", types_blob, pos + 12 * i)
                bits = m_off & 0xFFFFFF if kflag else m_off
                members.append((m_name, m_type, bits))
        fixed, per_item = _TRAILER.get(kind, (0, 0))
        pos += fixed + per_item * vlen
        types.append((name_off, kind, size_or_type, members))
    return types, strings


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
    types, strings = _parse(btf_path.read_bytes())

    def find(type_id: int, member: str, base_bits: int) -> int | None:
        for m_name, m_type, bits in types[type_id][3]:
            if m_name and _name(strings, m_name) == member:
                return base_bits + bits
            if not m_name and types[m_type][1] in (_KIND_STRUCT, _KIND_UNION):
                found = find(m_type, member, base_bits + bits)
                if found is not None:
                    return found
        return None

    for type_id, (name_off, kind, _size, _members) in enumerate(types):
        if kind != _KIND_STRUCT or not name_off or _name(strings, name_off) != struct_name:
            continue
        found = {m: find(type_id, m, 0) for m in members}
        if all(v is not None for v in found.values()):
            return {m: v // 8 for m, v in found.items() if v is not None}
    raise KeyError(f"{struct_name}.{{{','.join(members)}}} not all in {btf_path}")
