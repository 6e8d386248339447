"""bcc's JSON type descriptions → ctypes types, for typed map keys and values.

bcc describes each map's key and value type as JSON: a C scalar name
(``"unsigned int"``), or ``[name, [[field, type(, [n] | bits)]...], "struct" |
"struct_packed" | "union"]`` (a nested description in place of ``type`` for a
nested struct). The compile child stores these strings with the object; the
daemon turns them into ctypes here, so maps read and written through
:mod:`~lumen_sniff.capture.bpf.runtime.maps` give structs with named fields, as
bcc's tables did.
"""

from __future__ import annotations

import ctypes
import functools
import json
from typing import Any

__all__ = ["ctype_of"]

_SCALARS: dict[str, Any] = {
    "_Bool": ctypes.c_bool,
    "char": ctypes.c_char,
    "signed char": ctypes.c_byte,
    "unsigned char": ctypes.c_ubyte,
    "short": ctypes.c_short,
    "unsigned short": ctypes.c_ushort,
    "int": ctypes.c_int,
    "unsigned int": ctypes.c_uint,
    "long": ctypes.c_long,
    "unsigned long": ctypes.c_ulong,
    "long long": ctypes.c_longlong,
    "unsigned long long": ctypes.c_ulonglong,
    "__int128": ctypes.c_ubyte * 16,
    "unsigned __int128": ctypes.c_ubyte * 16,
    "void *": ctypes.c_void_p,
}


def _decode(desc: Any) -> Any:
    if isinstance(desc, str):
        try:
            return _SCALARS[desc]
        except KeyError:
            raise ValueError(f"unknown C type {desc!r}") from None
    if not isinstance(desc, list) or len(desc) < 2 or not isinstance(desc[1], list):
        raise ValueError(f"bad type description {desc!r}")
    fields: list[tuple[Any, ...]] = []
    anonymous: list[str] = []
    for member in desc[1]:
        if not isinstance(member, list) or len(member) not in (2, 3):
            raise ValueError(f"bad member {member!r}")
        name = str(member[0])
        if len(member) == 3 and member[2] in ("struct", "struct_packed", "union"):
            # A nested type written inline: the member is itself a description.
            if not name:
                name = f"__anon{len(anonymous)}"
                anonymous.append(name)
            fields.append((name, _decode(member)))
            continue
        ctype = _decode(member[1])
        if len(member) == 2:
            fields.append((name, ctype))
        elif isinstance(member[2], list) and member[2] and isinstance(member[2][0], int):
            fields.append((name, ctype * member[2][0]))
        elif isinstance(member[2], int):
            fields.append((name, ctype, member[2]))  # a bit field
        else:
            raise ValueError(f"bad member {member!r}")
    kind = desc[2] if len(desc) > 2 else "struct"
    base = ctypes.Union if kind == "union" else ctypes.Structure
    attrs: dict[str, Any] = {"_anonymous_": anonymous, "_fields_": fields}
    if kind == "struct_packed":
        attrs["_pack_"] = 1
    return type(str(desc[0]) or "anon", (base,), attrs)


@functools.cache
def ctype_of(desc: str) -> Any:
    """The ctypes type for bcc's JSON description ``desc``.

    Raises:
        ValueError: the description is not JSON or names an unknown C type.
    """
    try:
        parsed = json.loads(desc)
    except json.JSONDecodeError as exc:
        raise ValueError(f"type description is not JSON: {exc}") from exc
    return _decode(parsed)
