"""A compiled BPF object: map specs and relocatable program instructions.

This is what the compile child (:mod:`~lumen_sniff.capture.bpf.runtime.compiler`)
writes and the object cache stores. The daemon never trusts it blindly:
:func:`parse_object` checks its whole structure (sizes, indexes, that every
relocation points at an ``ld_imm64`` of a map) and raises ``ValueError`` on
anything else, so a corrupt or foreign cache entry is rebuilt, and the kernel's
verifier still checks every program when it is loaded.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["FORMAT", "CompiledObject", "MapSpec", "ProgramCode", "parse_object"]

FORMAT = 1
"""Version of the JSON form; another number is not read."""

INSN_BYTES = 8
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1
_MAX_INSNS = 1_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class MapSpec:
    """One map of the object, as bcc declared it."""

    name: str
    """The map's name in the C source."""
    type: int
    """``enum bpf_map_type``."""
    key_size: int
    """Key bytes (0 for a ring buffer)."""
    value_size: int
    """Value bytes per CPU (0 for a ring buffer)."""
    max_entries: int
    """Entries; the byte size of a ring buffer."""
    flags: int
    """``map_flags`` at creation."""
    key_desc: str
    """bcc's JSON description of the key type (for typed access)."""
    value_desc: str
    """bcc's JSON description of the value type."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgramCode:
    """One function's instructions, with its map references as map indexes."""

    name: str
    """The C function's name."""
    insns: bytes
    """``struct bpf_insn`` array; map ``ld_imm64`` immediates are 0 until relocated."""
    relocs: tuple[tuple[int, int], ...]
    """(instruction index, map index) for each map reference."""
    funcs: tuple[int, ...] = ()
    """Where each function starts when there is more than one (a bpf_loop
    callback linked after the program); the kernel wants BTF func_info for them."""

    def relocated(self, map_fds: list[int]) -> bytes:
        """The instructions with each map reference set to that map's file descriptor."""
        out = bytearray(self.insns)
        for insn, index in self.relocs:
            struct.pack_into("<i", out, insn * INSN_BYTES + 4, map_fds[index])
        return bytes(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class CompiledObject:
    """Maps and programs of one compiled C program."""

    license: str
    """The program license (bcc's default is GPL)."""
    kern_version: int
    """LINUX_VERSION_CODE the headers declared (older kernels check it for kprobes)."""
    maps: tuple[MapSpec, ...]
    """Every map, in relocation index order."""
    programs: tuple[ProgramCode, ...]
    """Every function bcc compiled."""

    def program(self, name: str) -> ProgramCode:
        """The function called ``name``; KeyError when the object has none."""
        for prog in self.programs:
            if prog.name == name:
                return prog
        raise KeyError(name)


def _int(raw: Any, what: str, low: int = 0, high: int = 1 << 32) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw < high:
        raise ValueError(f"bad {what}: {raw!r}")
    return raw


def _str(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"bad {what}: {raw!r}")
    return raw


def _map(raw: Any) -> MapSpec:
    if not isinstance(raw, dict):
        raise ValueError("a map is not an object")
    name = _str(raw.get("name"), "map name")
    if not name or not name.isidentifier():
        raise ValueError(f"bad map name {name!r}")
    return MapSpec(
        name=name,
        type=_int(raw.get("type"), "map type", 1, 64),
        key_size=_int(raw.get("key_size"), "key size", 0, 1 << 16),
        value_size=_int(raw.get("value_size"), "value size", 0, 1 << 24),
        max_entries=_int(raw.get("max_entries"), "max entries", 1),
        flags=_int(raw.get("flags"), "map flags"),
        key_desc=_str(raw.get("key_desc"), "key desc"),
        value_desc=_str(raw.get("value_desc"), "value desc"),
    )


def _program(raw: Any, n_maps: int) -> ProgramCode:
    if not isinstance(raw, dict):
        raise ValueError("a program is not an object")
    name = _str(raw.get("name"), "program name")
    try:
        insns = base64.b64decode(_str(raw.get("insns"), "insns"), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{name}: instructions are not base64") from exc
    count = len(insns) // INSN_BYTES
    if not insns or len(insns) % INSN_BYTES or count > _MAX_INSNS:
        raise ValueError(f"{name}: {len(insns)} bytes is not an instruction array")
    relocs_raw = raw.get("relocs")
    if not isinstance(relocs_raw, list):
        raise ValueError(f"{name}: relocations are not a list")
    relocs = []
    for pair in relocs_raw:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"{name}: bad relocation {pair!r}")
        insn = _int(pair[0], "relocation instruction", 0, count - 1)
        index = _int(pair[1], "relocation map", 0, n_maps)
        op, regs = insns[insn * INSN_BYTES], insns[insn * INSN_BYTES + 1]
        if op != _LD_IMM64 or regs >> 4 != _PSEUDO_MAP_FD:
            raise ValueError(f"{name}: relocation {insn} is not a map load")
        relocs.append((insn, index))
    funcs_raw = raw.get("funcs", [])
    if not isinstance(funcs_raw, list) or (funcs_raw and funcs_raw[0] != 0):
        raise ValueError(f"{name}: bad function starts {funcs_raw!r}")
    funcs = tuple(_int(f, "function start", 0, count) for f in funcs_raw)
    return ProgramCode(name=name, insns=insns, relocs=tuple(relocs), funcs=funcs)


def parse_object(text: str | bytes) -> CompiledObject:
    """Read and check the JSON form.

    Raises:
        ValueError: not JSON, another format, or any field out of shape.
    """
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("not a format-1 compiled object")
    maps_raw, progs_raw = raw.get("maps"), raw.get("programs")
    if not isinstance(maps_raw, list) or not isinstance(progs_raw, list) or not progs_raw:
        raise ValueError("maps or programs missing")
    maps = tuple(_map(m) for m in maps_raw)
    if len({m.name for m in maps}) != len(maps):
        raise ValueError("two maps share a name")
    programs = tuple(_program(p, len(maps)) for p in progs_raw)
    return CompiledObject(
        license=_str(raw.get("license"), "license") or "GPL",
        kern_version=_int(raw.get("kern_version"), "kern_version"),
        maps=maps,
        programs=programs,
    )
