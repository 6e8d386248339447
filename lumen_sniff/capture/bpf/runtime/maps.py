"""A BPF map as a Python mapping: the subset of bcc's table API the call sites use.

``m[key] = value``, ``m[key]`` (KeyError when absent), ``del m[key]``,
``m.pop(key, default)``, iteration over keys, ``len(m)``, ``m.clear()``, and
per-CPU maps giving one value per possible CPU (a list: plain ints for scalar
values, structs otherwise), as bcc's ``PerCpuArray``/``PerCpuHash`` did. Keys
and values are ctypes objects of the map's sizes (a plain int is accepted for a
scalar key or value); typed results use the types bcc described
(:func:`~lumen_sniff.capture.bpf.runtime.ctypedesc.ctype_of`). Deleting from an
array zeroes the slot, as in bcc (array slots cannot be deleted).
"""

from __future__ import annotations

import ctypes
import errno
import functools
from collections.abc import Iterator, MutableMapping
from typing import Any

from lumen_sniff.capture.bpf.runtime.ctypedesc import ctype_of
from lumen_sniff.capture.bpf.runtime.libbpf import libbpf
from lumen_sniff.capture.bpf.runtime.obj import MapSpec

__all__ = ["ARRAY_TYPES", "PERCPU_TYPES", "RINGBUF", "Table", "possible_cpus"]

PERCPU_TYPES = frozenset({5, 6, 10})
"""PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH."""
ARRAY_TYPES = frozenset({2, 6})
"""ARRAY, PERCPU_ARRAY."""
RINGBUF = 27
"""BPF_MAP_TYPE_RINGBUF."""


@functools.cache
def possible_cpus() -> int:
    """How many values a per-CPU map holds per key (the kernel's possible CPUs)."""
    with open("/sys/devices/system/cpu/possible") as handle:
        text = handle.read().strip()
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _typed(desc: str, size: int) -> Any:
    try:
        ctype = ctype_of(desc)
    except ValueError:
        ctype = None
    if ctype is None or ctypes.sizeof(ctype) != size:
        return ctypes.c_ubyte * size  # an undescribed type: raw bytes of the right size
    return ctype


class Table(MutableMapping[Any, Any]):
    """One map of a loaded object, by file descriptor."""

    def __init__(self, fd: int, spec: MapSpec) -> None:
        self.fd = fd
        """The map's file descriptor (owned by the loaded object)."""
        self.spec = spec
        """What the compiler declared."""
        self.Key: Any = _typed(spec.key_desc, spec.key_size) if spec.key_size else None
        """ctypes type of a key (bcc's name)."""
        self.Leaf: Any = _typed(spec.value_desc, spec.value_size) if spec.value_size else None
        """ctypes type of a value (per CPU for a per-CPU map)."""
        self._percpu = spec.type in PERCPU_TYPES
        self._stride = (spec.value_size + 7) & ~7  # per-CPU values are 8-byte aligned
        self._value_bytes = self._stride * possible_cpus() if self._percpu else spec.value_size

    # ------------------------------------------------------------ conversion

    def _key(self, key: Any) -> Any:
        if isinstance(key, int) and self.Key is not None:
            key = self.Key(key)
        if ctypes.sizeof(key) != self.spec.key_size:
            raise TypeError(f"{self.spec.name}: key of {ctypes.sizeof(key)} bytes")
        return key

    def _value_in(self, value: Any) -> Any:
        if isinstance(value, int) and self.Leaf is not None:
            value = self.Leaf(value)
        if self._percpu and ctypes.sizeof(value) == self.spec.value_size:
            # One value for every CPU, as bcc does for a scalar assignment.
            buf = ctypes.create_string_buffer(self._value_bytes)
            raw = bytes(value)
            for cpu in range(possible_cpus()):
                ctypes.memmove(ctypes.addressof(buf) + cpu * self._stride, raw, len(raw))
            return buf
        if ctypes.sizeof(value) != self._value_bytes:
            raise TypeError(f"{self.spec.name}: value of {ctypes.sizeof(value)} bytes")
        return value

    def _value_out(self, raw: bytes) -> Any:
        if not self._percpu:
            return self.Leaf.from_buffer_copy(raw)
        out = []
        for cpu in range(possible_cpus()):
            item = self.Leaf.from_buffer_copy(raw, cpu * self._stride)
            out.append(item.value if isinstance(item, ctypes._SimpleCData) else item)
        return out

    # ------------------------------------------------------------ mapping

    def __getitem__(self, key: Any) -> Any:
        k = self._key(key)
        buf = ctypes.create_string_buffer(self._value_bytes)
        ret = libbpf().bpf_map_lookup_elem(self.fd, ctypes.byref(k), buf)
        if ret == -errno.ENOENT:
            raise KeyError(key)
        if ret < 0:
            raise OSError(-ret, f"{self.spec.name}: lookup failed")
        return self._value_out(buf.raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        k, v = self._key(key), self._value_in(value)
        ret = libbpf().bpf_map_update_elem(self.fd, ctypes.byref(k), ctypes.byref(v), 0)
        if ret < 0:
            raise OSError(-ret, f"{self.spec.name}: update failed")

    def __delitem__(self, key: Any) -> None:
        k = self._key(key)
        if self.spec.type in ARRAY_TYPES:
            zero = ctypes.create_string_buffer(self._value_bytes)
            ret = libbpf().bpf_map_update_elem(self.fd, ctypes.byref(k), zero, 0)
        else:
            ret = libbpf().bpf_map_delete_elem(self.fd, ctypes.byref(k))
        if ret == -errno.ENOENT:
            raise KeyError(key)
        if ret < 0:
            raise OSError(-ret, f"{self.spec.name}: delete failed")

    def __iter__(self) -> Iterator[Any]:
        if self.Key is None:
            return
        prev: Any = None
        while True:
            nxt = self.Key()
            ret = libbpf().bpf_map_get_next_key(
                self.fd, None if prev is None else ctypes.byref(prev), ctypes.byref(nxt)
            )
            if ret < 0:
                return  # ENOENT: the last key
            yield nxt
            prev = nxt

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def clear(self) -> None:
        """Delete every key (zero every slot of an array)."""
        for key in list(self):
            self.pop(key, None)
