"""Where the recorded API responses live: fixtures/wire/ (a copy of shared/wire/).

The copy keeps the repository self-contained: CI and a fresh clone need nothing
beside it. ``fixtures/wire/INDEX.md`` says where each file came from.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WIRE_DIR"]

WIRE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
