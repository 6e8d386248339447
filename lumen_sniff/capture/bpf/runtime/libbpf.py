"""ctypes bindings to libbpf (``libbpf.so.1``) and bcc's LLVM-free ``libbcc_bpf.so.0``.

Both come with Debian's ``python3-bpfcc`` (through ``libbpfcc`` → ``libbpf1``)
and are small C libraries: libbpf creates maps, loads programs, updates maps,
makes BPF links; libbcc_bpf attaches uprobes and
tracepoints exactly as bcc did (a perf event through the uprobe PMU, with the
tracefs fallback of old kernels). Neither maps LLVM.

Every function returns a file descriptor or 0, and raises ``OSError`` with the
errno the kernel gave (libbpf ≥ 1.0 returns ``-errno``).

The opts structs carry their own size (``sz``): libbpf accepts a struct shorter
than its own, so these declarations, written for libbpf 1.1, hold for newer ones.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from typing import Any

from lumen_sniff.capture.bpf.runtime.funcinfo import btf_blob, func_info

__all__ = [
    "attach_tracepoint",
    "attach_uprobe",
    "bcc_bpf",
    "close_perf_event",
    "detach_uprobe",
    "libbpf",
    "link_create",
    "map_create",
    "obj_pin",
    "prog_load",
]


class _MapCreateOpts(ctypes.Structure):
    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
        ("numa_node", ctypes.c_uint32),
        ("map_ifindex", ctypes.c_uint32),
    )


class _ProgLoadOpts(ctypes.Structure):
    _fields_ = (
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("attach_btf_obj_fd", ctypes.c_uint32),
        ("fd_array", ctypes.c_void_p),
        ("func_info", ctypes.c_void_p),
        ("func_info_cnt", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_void_p),
        ("line_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_char_p),
    )


_P = ctypes.c_void_p
_I = ctypes.c_int
_U32 = ctypes.c_uint32
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_map_create": (_I, [_I, ctypes.c_char_p, _U32, _U32, _U32, _P]),
    "bpf_prog_load": (_I, [_I, ctypes.c_char_p, ctypes.c_char_p, _P, ctypes.c_size_t, _P]),
    "bpf_btf_load": (_I, [_P, ctypes.c_size_t, _P]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "bpf_link_create": (_I, [_I, _I, _I, _P]),
    "bpf_obj_pin": (_I, [_I, ctypes.c_char_p]),
}


@functools.cache
def libbpf() -> Any:
    """libbpf.so.1, with the signatures used here declared."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


@functools.cache
def bcc_bpf() -> Any:
    """bcc's libbcc_bpf.so.0 (no LLVM): uprobe and tracepoint attachment."""
    lib = ctypes.CDLL("libbcc_bpf.so.0", use_errno=True)
    # bcc ≥ 0.23 takes a ref_ctr_offset after pid; an extra trailing argument is
    # harmless to an older one on the SysV and AAPCS calling conventions.
    lib.bpf_attach_uprobe.restype = _I
    lib.bpf_attach_uprobe.argtypes = [_I, _I, ctypes.c_char_p, ctypes.c_char_p]
    lib.bpf_attach_uprobe.argtypes += [ctypes.c_uint64, _I, _U32]
    lib.bpf_detach_uprobe.restype = _I
    lib.bpf_detach_uprobe.argtypes = [ctypes.c_char_p]
    lib.bpf_attach_tracepoint.restype = _I
    lib.bpf_attach_tracepoint.argtypes = [_I, ctypes.c_char_p, ctypes.c_char_p]
    lib.bpf_close_perf_event_fd.restype = _I
    lib.bpf_close_perf_event_fd.argtypes = [_I]
    return lib


def _check(ret: int, what: str, *, errno_from_ret: bool = True) -> int:
    # libbpf returns -errno; bcc returns -1 and sets errno.
    if ret < 0:
        err = -ret if errno_from_ret else (ctypes.get_errno() or 1)
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def map_create(
    map_type: int, name: str, key_size: int, value_size: int, max_entries: int, flags: int
) -> int:
    """A new map's file descriptor (close-on-exec, as libbpf makes every descriptor)."""
    opts = _MapCreateOpts(sz=ctypes.sizeof(_MapCreateOpts), map_flags=flags)
    ret = libbpf().bpf_map_create(
        map_type, name[:15].encode(), key_size, value_size, max_entries, ctypes.byref(opts)
    )
    return _check(ret, f"creating map {name}")


def prog_load(
    prog_type: int,
    name: str,
    insns: bytes,
    *,
    license: str,
    kern_version: int,
    expected_attach_type: int = 0,
    funcs: tuple[int, ...] = (),
) -> int:
    """Load a program; on a verifier refusal the error carries the log's tail.

    The first attempt carries no log buffer (fast); only a refusal is retried
    with the verifier log switched on, to say why. ``funcs``: where each of its
    functions starts, when it has subprograms (BTF func_info is then required).
    """
    buf = ctypes.create_string_buffer(insns, len(insns))
    btf_fd = _btf_fd(len(funcs)) if len(funcs) > 1 else -1
    info = func_info(funcs) if btf_fd >= 0 else None
    try:
        for log_level in (0, 1):
            log = ctypes.create_string_buffer(1 << 20 if log_level else 0)
            opts = _ProgLoadOpts(
                sz=ctypes.sizeof(_ProgLoadOpts),
                expected_attach_type=expected_attach_type,
                kern_version=kern_version,
                log_level=log_level,
                log_size=ctypes.sizeof(log) if log_level else 0,
                log_buf=ctypes.cast(log, ctypes.c_char_p) if log_level else None,
            )
            if info is not None:
                opts.prog_btf_fd = btf_fd
                opts.func_info = ctypes.cast(info, ctypes.c_void_p)
                opts.func_info_cnt = len(funcs)
                opts.func_info_rec_size = 8  # struct bpf_func_info
            ret = libbpf().bpf_prog_load(
                prog_type,
                name[:15].encode(),
                license.encode(),
                buf,
                len(insns) // 8,
                ctypes.byref(opts),
            )
            if ret >= 0:
                return int(ret)
            if log_level:
                tail = log.value.decode(errors="replace").strip().splitlines()[-8:]
                err = -ret
                raise OSError(err, f"loading {name}: {os.strerror(err)}: " + " | ".join(tail))
        raise AssertionError("unreachable")
    finally:
        if btf_fd >= 0:
            os.close(btf_fd)


def _btf_fd(n_funcs: int) -> int:
    """A BTF object naming ``n_funcs`` functions; the program holds its own reference."""
    blob = btf_blob(n_funcs)
    data = ctypes.create_string_buffer(blob, len(blob))
    return _check(libbpf().bpf_btf_load(data, len(blob), None), "loading BTF func_info")


def link_create(prog_fd: int, target_fd: int, attach_type: int) -> int:
    """A BPF link of the program to the target (a cgroup); closing it detaches."""
    ret = libbpf().bpf_link_create(prog_fd, target_fd, attach_type, None)
    return _check(ret, "BPF_LINK_CREATE")


def obj_pin(fd: int, path: str) -> None:
    """Pin a map, program or link under a bpffs path."""
    _check(libbpf().bpf_obj_pin(fd, path.encode()), f"pinning {path}")


_BCC_PY_REF_CTR = 6
"""The ref_ctr_offset bcc 0.26's Python binding ends up passing on Debian 12.

Its ``bpf_attach_uprobe`` declaration omits the last argument, so the C side
reads whatever libffi left on the stack: 6 in every case seen in this kernel's
"ref_ctr_offset mismatch" messages. The kernel refuses a uprobe at a spot that
already has one with another ref_ctr_offset (EINVAL), so while such a tool
(bcc's sslsniff, a doctor of an older release, a benchmark floor) has probes on
the same function, the daemon's own would fail. Offset 6 is inside the ELF
header, which no process maps writable, so the kernel never updates a counter
there: retrying with it is inert and lets both coexist."""


def attach_uprobe(prog_fd: int, path: str, offset: int, *, ret: bool, ev_name: str) -> int:
    """A uprobe (``ret``: uretprobe) at a file offset, for every process; its perf fd."""
    lib = bcc_bpf()
    err = 0
    # ref_ctr_offset 0: these functions have no USDT semaphore.
    for ref_ctr in (0, _BCC_PY_REF_CTR):
        ctypes.set_errno(0)
        fd = lib.bpf_attach_uprobe(
            prog_fd, 1 if ret else 0, ev_name.encode(), path.encode(), offset, -1, ref_ctr
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno() or 1
        lib.bpf_detach_uprobe(ev_name.encode())  # the tracefs fallback's event, if any
        if err != errno.EINVAL:
            break
    raise OSError(err, f"uprobe on {path}+{offset:#x}: {os.strerror(err)}")


def detach_uprobe(fd: int, ev_name: str) -> None:
    """Close a uprobe's perf event; remove its tracefs event if the fallback made one."""
    close_perf_event(fd)
    # A no-op unless the uprobe PMU was missing (old kernels): then tracefs has an event.
    bcc_bpf().bpf_detach_uprobe(ev_name.encode())


def attach_tracepoint(prog_fd: int, category: str, event: str) -> int:
    """A tracepoint's perf event with the program attached."""
    ctypes.set_errno(0)
    fd = bcc_bpf().bpf_attach_tracepoint(prog_fd, category.encode(), event.encode())
    return _check(fd, f"tracepoint {category}:{event}", errno_from_ret=False)


def close_perf_event(fd: int) -> None:
    """Disable and close a perf event (detaches its program)."""
    bcc_bpf().bpf_close_perf_event_fd(fd)
