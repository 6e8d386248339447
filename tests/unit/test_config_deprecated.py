"""Deprecated config keys load, with a warning naming the file and line, never silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumen_sniff.config import load_settings
from lumen_sniff.errors import ConfigError


def _load(tmp_path: Path, text: str) -> tuple[str, ...]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path, required=True).warnings


def test_poll_timeout_ms_is_accepted_with_a_warning(tmp_path: Path) -> None:
    warnings = _load(tmp_path, '[capture]\nmode = "bpf"\npoll_timeout_ms = 500\n')
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{tmp_path / 'config.toml'}:3: [capture] poll_timeout_ms: ")
    assert "has no effect" in warnings[0]


def test_no_deprecated_key_no_warning(tmp_path: Path) -> None:
    assert _load(tmp_path, '[capture]\nmode = "bpf"\n') == ()


@pytest.mark.parametrize("value", ["0", '"fast"'])
def test_poll_timeout_ms_must_still_be_a_positive_integer(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="poll_timeout_ms"):
        _load(tmp_path, f"[capture]\npoll_timeout_ms = {value}\n")


def test_unknown_keys_are_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        _load(tmp_path, "[capture]\npoll_timeout = 500\n")
