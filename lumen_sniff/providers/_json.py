"""Small, safe JSON helpers shared by the API readers. Nothing here raises.

The readers parse as little as they can: cheap byte checks decide whether a
record can carry usage, and only then is it parsed. When a document is too big
or cut off, :func:`find_object` digs one object (e.g. ``"usage": {…}``) out of
the bytes without parsing the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "INVALID",
    "as_decimal",
    "as_int",
    "dig",
    "find_object",
    "first_string",
    "has_object",
    "parse",
]

INVALID: Any = object()
"""Returned by :func:`parse` for bytes that are not JSON."""

_BLANK = b" \t\r\n"
_TEXT_BLANK = " \t\r\n"
_scan: Callable[[str, int], tuple[Any, int]]
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # json.loads's own scanner
_STRING_CAP = 256


def parse(data: bytes | bytearray | str) -> Any:
    """Parse JSON, or return :data:`INVALID`.

    Args:
        data: UTF-8 bytes or text.

    Returns:
        The value, or ``INVALID`` when ``data`` is not valid JSON.
    """
    try:
        if type(data) is bytes and data[:1] == b"{" and data[1:2] not in (b"\0", b""):
            # What json.loads does for UTF-8 bytes (two non-zero first bytes are
            # UTF-8 to its detect_encoding), without its Python-level layers.
            text = data.decode("utf-8", "surrogatepass")
            value, end = _scan(text, 0)
            if end == len(text) or not text[end:].strip(_TEXT_BLANK):
                return value
            return INVALID  # more than JSON's whitespace after the value
        return json.loads(data)
    except (ValueError, RecursionError, StopIteration):
        return INVALID


def as_int(value: Any) -> int:
    """A non-negative token count from a JSON value; anything else counts 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


def as_decimal(value: Any) -> Decimal | None:
    """A money amount from a JSON number, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # repr of a float parsed from JSON is the shortest text that round-trips,
        # which is the wire text for any realistic cost.
        out = Decimal(str(value))
    except InvalidOperation:
        return None
    return out if out.is_finite() else None


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]…`` through dicts only; None when any step is missing."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def has_object(data: bytes, key: bytes) -> bool:
    """True when ``data`` holds ``key`` (quoted) followed by ``:`` and ``{``.

    ``"usage":null`` (OpenAI puts it on every chunk) does not count.
    """
    if data.find(key) < 0:  # find: `in` first tries its operand as an int
        return False
    pattern = _OBJECT_KEYS.get(key)
    if pattern is None:
        pattern = re.compile(re.escape(key) + rb"[ \t\r\n]*:[ \t\r\n]*\{")
        if len(_OBJECT_KEYS) < 64:
            _OBJECT_KEYS[key] = pattern
    return pattern.search(data) is not None


_OBJECT_KEYS: dict[bytes, re.Pattern[bytes]] = {}
"""``key: {`` patterns by key (the readers use a handful of keys)."""


def first_string(data: bytes, key: bytes) -> str | None:
    """The string value of the first ``key`` (quoted) in ``data``, bounded, or None."""
    start = data.find(key)
    while start >= 0:
        i = _skip_blank(data, start + len(key))
        if i < len(data) and data[i] == 0x3A:
            i = _skip_blank(data, i + 1)
            if i < len(data) and data[i] == 0x22:  # '"'
                end = data.find(b'"', i + 1, i + 2 + _STRING_CAP)
                if end > i and b"\\" not in data[i + 1 : end]:
                    return data[i + 1 : end].decode("utf-8", "replace")
                return None
        start = data.find(key, start + 1)
    return None


_OBJ_STRUCT = re.compile(rb'[{}"]')
_IN_STR = re.compile(rb'["\\]')


def find_object(data: bytes, key: bytes) -> Any:
    """Parse the object after the last ``key`` (quoted) whose value is an object.

    Args:
        data: A document or a piece of one (head or tail of a big body).
        key: The quoted key, e.g. ``b'"usage"'``.

    Returns:
        The parsed dict, or None when no complete object follows the key.
    """
    start = data.rfind(key)
    while start >= 0:
        i = _skip_blank(data, start + len(key))
        if i < len(data) and data[i] == 0x3A:
            i = _skip_blank(data, i + 1)
            if i < len(data) and data[i] == 0x7B:
                end = _object_end(data, i)
                if end > 0:
                    value = parse(data[i:end])
                    if isinstance(value, dict):
                        return value
        start = data.rfind(key, 0, start)
    return None


def _object_end(data: bytes, i: int) -> int:
    """Index just past the object opening at ``i``, or -1 if it does not close."""
    depth, n = 0, len(data)
    while i < n:
        m = _OBJ_STRUCT.search(data, i)
        if m is None:
            return -1
        c = data[m.start()]
        i = m.end()
        if c == 0x22:
            while True:
                s = _IN_STR.search(data, i)
                if s is None:
                    return -1
                i = s.end()
                if data[s.start()] == 0x22:
                    break
                i += 1  # skip the escaped byte
        elif c == 0x7B:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _skip_blank(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in _BLANK:
        i += 1
    return i
