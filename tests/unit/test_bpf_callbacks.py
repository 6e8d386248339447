"""bpf_loop callbacks: the compile child's linking and the loader's BTF func_info (pure)."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from lumen_sniff.capture.bpf.runtime.compiler import _link_callback
from lumen_sniff.capture.bpf.runtime.funcinfo import btf_blob, func_info
from lumen_sniff.capture.bpf.runtime.obj import parse_object

_INSN = struct.Struct("<BBhi")
_MOV_R1 = _INSN.pack(0xB7, 0x01, 0, 128)  # r1 = 128
_LD_ZERO_R2 = _INSN.pack(0x18, 0x02, 0, 0) + _INSN.pack(0, 0, 0, 0)  # r2 = <unrelocated>
_CALL_LOOP = _INSN.pack(0x85, 0, 0, 181)  # call bpf_loop
_EXIT = _INSN.pack(0x95, 0, 0, 0)
_CALLBACK = _INSN.pack(0xB7, 0x00, 0, 1) + _EXIT  # r0 = 1; exit


def test_a_function_reference_becomes_a_pseudo_func_load_of_the_appended_callback() -> None:
    program = _MOV_R1 + _LD_ZERO_R2 + _CALL_LOOP + _EXIT
    code, funcs = _link_callback(program, {"lumen_cb_step": _CALLBACK}, "prog")
    count = len(program) // 8
    assert funcs == [0, count]
    assert code == program[:8] + code[8:16] + program[16:] + _CALLBACK
    op, regs, off, imm = _INSN.unpack_from(code, 8)
    # src_reg BPF_PSEUDO_FUNC (4), dst r2; imm: target = this insn + imm + 1.
    assert (op, regs >> 4, regs & 15, off) == (0x18, 4, 2, 0)
    assert 1 + imm + 1 == count


def test_a_program_without_references_is_left_alone() -> None:
    program = _MOV_R1 + _EXIT
    assert _link_callback(program, {"lumen_cb_step": _CALLBACK}, "prog") == (program, [0])


def test_a_reference_with_no_or_two_callbacks_is_refused() -> None:
    program = _LD_ZERO_R2 + _CALL_LOOP + _EXIT
    with pytest.raises(ValueError, match="exactly one callback"):
        _link_callback(program, {}, "prog")
    with pytest.raises(ValueError, match="exactly one callback"):
        _link_callback(program, {"lumen_cb_a": _CALLBACK, "lumen_cb_b": _CALLBACK}, "prog")


def test_btf_names_one_static_function_per_start() -> None:
    blob = btf_blob(2)
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", blob
    )
    assert (magic, version, hdr_len, type_off) == (0xEB9F, 1, 24, 0)
    assert len(blob) == hdr_len + str_off + str_len and str_off == type_len
    # int (16 bytes), the prototype (12), two functions (12 each).
    assert type_len == 16 + 12 + 2 * 12
    kinds = [struct.unpack_from("<III", blob, hdr_len + at)[1] >> 24 for at in (0, 16, 28, 40)]
    assert kinds == [1, 13, 12, 12]  # INT, FUNC_PROTO, FUNC, FUNC
    assert list(func_info((0, 7))) == [0, 3, 7, 4]  # (insn_off, type id) per function


def _obj(funcs: object) -> str:
    program = {"name": "p", "insns": base64.b64encode(_EXIT + _CALLBACK).decode(), "relocs": []}
    if funcs is not None:
        program["funcs"] = funcs
    return json.dumps(
        {"format": 1, "license": "GPL", "kern_version": 0, "maps": [], "programs": [program]}
    )


def test_the_object_keeps_function_starts_and_checks_them() -> None:
    assert parse_object(_obj(None)).program("p").funcs == ()
    assert parse_object(_obj([0, 1])).program("p").funcs == (0, 1)
    for bad in ([1], [0, 9], "x"):
        with pytest.raises(ValueError):
            parse_object(_obj(bad))
