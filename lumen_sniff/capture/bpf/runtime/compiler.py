"""The compile child: C text → a compiled object, in a process that is thrown away.

Run as ``python -m lumen_sniff.capture.bpf.runtime.compiler``: reads one JSON
request ``{"text": ..., "cflags": [...]}`` on stdin and writes the compiled
object (:mod:`lumen_sniff.capture.bpf.runtime.obj`'s JSON form) on stdout. Only
this module imports bcc, so LLVM and clang (about 85 MB touched) live in this
child for the second or two that compiling takes, never in the daemon.

bcc creates every map while it compiles, and writes each map's file descriptor
into the ``ld_imm64`` instructions that reference it (``src_reg`` =
``BPF_PSEUDO_MAP_FD``). Those descriptors mean nothing outside this process, so
each one is replaced by the map's index in the object, recorded as a relocation
that the daemon resolves against the maps it creates itself. The programs are
not loaded here: the daemon loads them (the verifier checks them there).
"""

from __future__ import annotations

import base64
import ctypes
import json
import struct
import sys
from typing import Any

__all__ = ["compile_text", "main"]

_INSN = struct.Struct("<BBhi")
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1
_PSEUDO_MAP_VALUE = 2
_PSEUDO_FUNC = 4
# Functions bcc compiles on their own that are bpf_loop callbacks, not programs.
CALLBACK_PREFIX = "lumen_cb_"


def _tables(lib: Any, module: int) -> list[dict[str, Any]]:
    lib.bpf_num_tables.restype = ctypes.c_size_t
    lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    for fn, restype in (
        ("bpf_table_name", ctypes.c_char_p),
        ("bpf_table_fd_id", ctypes.c_int),
        ("bpf_table_type_id", ctypes.c_int),
        ("bpf_table_key_size_id", ctypes.c_size_t),
        ("bpf_table_leaf_size_id", ctypes.c_size_t),
        ("bpf_table_max_entries_id", ctypes.c_size_t),
        ("bpf_table_flags_id", ctypes.c_int),
        ("bpf_table_key_desc_id", ctypes.c_char_p),
        ("bpf_table_leaf_desc_id", ctypes.c_char_p),
    ):
        getattr(lib, fn).restype = restype
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    out = []
    for i in range(lib.bpf_num_tables(module)):
        out.append(
            {
                "name": lib.bpf_table_name(module, i).decode(),
                "fd": lib.bpf_table_fd_id(module, i),
                "type": lib.bpf_table_type_id(module, i),
                "key_size": lib.bpf_table_key_size_id(module, i),
                "value_size": lib.bpf_table_leaf_size_id(module, i),
                "max_entries": lib.bpf_table_max_entries_id(module, i),
                "flags": lib.bpf_table_flags_id(module, i),
                "key_desc": (lib.bpf_table_key_desc_id(module, i) or b"").decode(),
                "value_desc": (lib.bpf_table_leaf_desc_id(module, i) or b"").decode(),
            }
        )
    return out


def _relocate(code: bytes, fd_index: dict[int, int], name: str) -> tuple[bytes, list[list[int]]]:
    insns = bytearray(code)
    relocs: list[list[int]] = []
    for n in range(len(insns) // _INSN.size):
        op, regs, _off, imm = _INSN.unpack_from(insns, n * _INSN.size)
        if op != _LD_IMM64:
            continue
        src = regs >> 4
        if src == _PSEUDO_MAP_VALUE:
            raise ValueError(f"{name}: map value references (global data) are not supported")
        if src != _PSEUDO_MAP_FD:
            continue
        if imm not in fd_index:
            raise ValueError(f"{name}: instruction {n} references fd {imm}, not a map")
        relocs.append([n, fd_index[imm]])
        struct.pack_into("<i", insns, n * _INSN.size + 4, 0)
    return bytes(insns), relocs


def _link_callback(code: bytes, callbacks: dict[str, bytes], name: str) -> tuple[bytes, list[int]]:
    """Append the callback a program passes to bpf_loop; (code, function starts).

    bcc 0.26 leaves a reference to another function as an unrelocated ``ld_imm64``
    of 0 (both halves). Such an instruction can only be a callback reference, so
    it becomes a ``BPF_PSEUDO_FUNC`` load of the callback appended after the
    program; the loader then gives the kernel one ``func_info`` per function.
    """
    insns = bytearray(code)
    count = len(insns) // _INSN.size
    unresolved = []
    for n in range(count - 1):
        op, regs, _off, imm = _INSN.unpack_from(insns, n * _INSN.size)
        high = _INSN.unpack_from(insns, (n + 1) * _INSN.size)
        if op == _LD_IMM64 and regs >> 4 == 0 and imm == 0 and high == (0, 0, 0, 0):
            unresolved.append(n)
    if not unresolved:
        return code, [0]
    if len(callbacks) != 1:
        raise ValueError(f"{name}: a function reference needs exactly one callback")
    (callback,) = callbacks.values()
    for n in unresolved:
        op, regs, off, _imm = _INSN.unpack_from(insns, n * _INSN.size)
        regs = (_PSEUDO_FUNC << 4) | (regs & 15)
        _INSN.pack_into(insns, n * _INSN.size, op, regs, off, count - n - 1)  # relative
    return bytes(insns) + callback, [0, count]


def compile_text(text: str, cflags: list[str]) -> dict[str, Any]:
    """Compile ``text`` with bcc; return the object's JSON-ready dict (format 1)."""
    import bcc  # only here: the daemon never imports bcc
    from bcc.libbcc import lib

    bpf = bcc.BPF(text=text.encode(), cflags=cflags)
    try:
        module = bpf.module
        maps = _tables(lib, module)
        fd_index = {m.pop("fd"): i for i, m in enumerate(maps)}
        lib.bpf_num_functions.restype = ctypes.c_ulonglong
        names = [
            lib.bpf_function_name(module, i).decode() for i in range(lib.bpf_num_functions(module))
        ]
        callbacks = {n: bpf.dump_func(n.encode()) for n in names if n.startswith(CALLBACK_PREFIX)}
        programs = []
        for name in names:
            if name in callbacks:
                continue
            linked, funcs = _link_callback(bpf.dump_func(name.encode()), callbacks, name)
            code, relocs = _relocate(linked, fd_index, name)
            program: dict[str, Any] = {
                "name": name,
                "insns": base64.b64encode(code).decode(),
                "relocs": relocs,
            }
            if len(funcs) > 1:
                program["funcs"] = funcs
            programs.append(program)
        return {
            "format": 1,
            "license": (lib.bpf_module_license(module) or b"GPL").decode(),
            "kern_version": int(lib.bpf_module_kern_version(module)),
            "bcc_version": str(getattr(bcc, "__version__", "")),
            "maps": maps,
            "programs": programs,
        }
    finally:
        bpf.cleanup()


def main() -> int:
    """Read a request on stdin, write the object on stdout; 1 with the reason on stderr."""
    request = json.loads(sys.stdin.read())
    try:
        obj = compile_text(str(request["text"]), [str(c) for c in request["cflags"]])
    except Exception as exc:  # bcc raises bare Exception on compile errors
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(json.dumps(obj))
    return 0


if __name__ == "__main__":
    sys.exit(main())
