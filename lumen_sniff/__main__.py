"""``python -m lumen_sniff`` is the ``lumen-sniff`` command."""

from __future__ import annotations

from lumen_sniff.cli.main import main

main()
