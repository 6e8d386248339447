"""Typed getters over a parsed TOML document whose errors name the file and line.

tomllib keeps no positions, so a bad value's line is found again in the text
(best effort). The config validator (:mod:`lumen_sniff.config`) builds on these.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lumen_sniff.errors import ConfigError

__all__ = ["TomlReader"]


class TomlReader:
    """Reads typed values out of TOML tables; a wrong one is a ConfigError with file:line."""

    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()

    def _table(self, doc: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise self._error("", name, "must be a table")
        self._only(value, name, allowed)
        return value

    def _only(self, table: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                where = f"[{name}] " if name else ""
                raise self._error(
                    name, key, f"unknown key {where}{key!r}; expected one of {', '.join(allowed)}"
                )

    def _str(self, table: dict[str, Any], name: str, key: str) -> str:
        value = table[key]
        if not isinstance(value, str):
            raise self._error(name, key, f"must be a string, got {type(value).__name__}")
        return value

    def _int(
        self, table: dict[str, Any], name: str, key: str, *, default: int, minimum: int
    ) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(name, key, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self._error(name, key, f"must be >= {minimum}, got {value}")
        return int(value)

    def _ints(
        self, table: dict[str, Any], name: str, key: str, default: tuple[int, ...]
    ) -> list[int]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise self._error(name, key, "must be a list of integers")
        return value

    def _strs(
        self, table: dict[str, Any], name: str, key: str, default: tuple[str, ...]
    ) -> list[str]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or any(not isinstance(v, str) for v in value):
            raise self._error(name, key, "must be a list of strings")
        return value

    def _money(self, table: dict[str, Any], name: str, key: str) -> Decimal:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self._error(name, key, "must be a number (USD per million tokens)")
        try:
            money = Decimal(str(value))
        except InvalidOperation:
            raise self._error(name, key, f"not a number: {value!r}") from None
        if money < 0 or not money.is_finite():
            raise self._error(name, key, f"must be a finite number >= 0, got {value!r}")
        return money

    def error(self, table: str, key: str, reason: str) -> ConfigError:
        """A ConfigError naming the file, the line and the reason (for configsinks)."""
        return self._error(table, key, reason)

    def _error(self, table: str, key: str, reason: str) -> ConfigError:
        line = self._line_of(table, key)
        where = f"{self._path}:{line}" if line else str(self._path)
        label = f"[{table}] {key}" if table else key
        return ConfigError(f"{where}: {label}: {reason}")

    def _line_of(self, table: str, key: str) -> int | None:
        """Best-effort line of ``key`` inside ``[table]`` (tomllib keeps no positions)."""
        in_table = table == ""
        header = re.compile(r"^\s*\[+\s*(.+?)\s*\]+\s*(#.*)?$")
        key_re = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
        for number, text in enumerate(self._lines, start=1):
            head = header.match(text)
            if head:
                name = head.group(1).replace('"', "").replace(" ", "")
                wanted = table.replace('"', "").replace(" ", "")
                in_table = name == wanted or (table == "" and name == key)
                if in_table and table == "" and name == key:
                    return number
                continue
            if in_table and key_re.match(text):
                return number
        return None
