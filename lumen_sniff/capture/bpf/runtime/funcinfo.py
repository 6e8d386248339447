"""BTF ``func_info`` for programs with subprograms (``bpf_loop`` callbacks).

The kernel takes a callback (an ``ld_imm64`` with ``src_reg`` =
``BPF_PSEUDO_FUNC``) only from a program that says where each of its functions
starts: a ``func_info`` record per function, each naming a ``BTF_KIND_FUNC``
type in a BTF object loaded beside it. bcc 0.26 emits no BTF for what it
compiles, so this module writes the smallest BTF that satisfies that check: one
``int`` type, one prototype ``int (void)`` and one static function per
subprogram. The verifier learns nothing else from it: static functions are
checked by walking their instructions, whatever their prototype says.
"""

from __future__ import annotations

import ctypes
import functools
import struct

__all__ = ["btf_blob", "func_info"]

_BTF_MAGIC = 0xEB9F
_KIND_INT = 1
_KIND_FUNC = 12
_KIND_FUNC_PROTO = 13
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type off/len, str off/len


def _info(kind: int, vlen: int = 0) -> int:
    return (kind << 24) | vlen


@functools.cache
def btf_blob(n_funcs: int) -> bytes:
    """BTF holding ``n_funcs`` static functions; type ids 3 .. 3 + n_funcs - 1."""
    strings = bytearray(b"\0int\0")
    types = bytearray()
    types += struct.pack("<III", 1, _info(_KIND_INT), 4)  # [1] int, 4 bytes
    types += struct.pack("<I", (1 << 24) | 32)  # signed, 32 bits
    types += struct.pack("<III", 0, _info(_KIND_FUNC_PROTO), 1)  # [2] int (void)
    for i in range(n_funcs):  # [3 + i] static function f<i> of type [2]
        name_off = len(strings)
        strings += f"f{i}\0".encode()
        types += struct.pack("<III", name_off, _info(_KIND_FUNC), 2)  # linkage 0: static
    header = _HEADER.pack(_BTF_MAGIC, 1, 0, _HEADER.size, 0, len(types), len(types), len(strings))
    return header + bytes(types) + bytes(strings)


def func_info(starts: tuple[int, ...]) -> ctypes.Array[ctypes.c_uint32]:
    """``struct bpf_func_info`` records (insn_off, type_id) for functions at ``starts``."""
    flat: list[int] = []
    for i, start in enumerate(starts):
        flat += [start, 3 + i]
    return (ctypes.c_uint32 * len(flat))(*flat)
