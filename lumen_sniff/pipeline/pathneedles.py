"""The request paths that may be LLM API calls, as needles the kernel can match.

The eBPF capture judges the first request line of a connection in the kernel
(the copy budget, see ``bpf/lumen.bpf.c``): a path that matches no needle cannot
be an LLM call, so the connection is copied only up to a budget. The kernel
knows nothing of providers; this module gives it two lists, both of strings
that start with ``/``:

- **prefixes**: match only at the start of the path (the connection filter's
  :data:`~lumen_sniff.providers.table.LLM_PATH_PREFIXES`, and the literal
  start of every endpoint pattern anchored with ``^``);
- **parts**: match at any ``/`` of the path: the filter's
  :data:`~lumen_sniff.providers.table.LLM_PATH_PARTS`, plus, for every other
  endpoint row, the literal text any match of its pattern must start with (patterns are
  searched anywhere in the path, and a known host lets any path through the
  filter, so the filter's lists alone would not cover ``/x/models/m:generateContent``).

So every path the registry could classify, and every path the connection filter
lets through, matches a needle: the kernel's "not LLM" is never wrong, only
sometimes "don't know" (then everything is copied, as before).
"""

from __future__ import annotations

import importlib
from typing import Any

from lumen_sniff.providers.table import FAMILIES, LLM_PATH_PARTS, LLM_PATH_PREFIXES

__all__ = ["endpoint_needles", "kernel_path_filter"]

_parser: Any = importlib.import_module("re._parser")  # the stdlib's own regex parser
_MAX_VARIANTS = 16
"""Expansions of one pattern at most ("[mM]" doubles them); past it the needles stay shorter."""


def _expand(items: Any) -> tuple[list[str], bool]:
    """Literal strings every match of ``items`` starts with one of; True when whole."""
    c = _parser
    outs = [""]
    for op, av in items:
        if op is c.AT:
            continue  # anchors consume nothing
        if op is c.LITERAL:
            outs = [o + chr(av) for o in outs]
            continue
        if op is c.IN and all(o is c.LITERAL for o, _ in av) and len(outs) * len(av) <= 16:
            outs = [o + chr(ch) for o in outs for _, ch in av]
            continue
        if op is c.SUBPATTERN:
            sub, whole = _expand(av[3])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] == 0 and av[1] == 1:
            sub, whole = _expand(av[2])
            if not whole:
                return outs, False  # absent or partial: only the text so far is sure
            sub = ["", *sub]
        elif op is c.BRANCH:
            subs = [_expand(alt) for alt in av[1]]
            sub = [s for alt, _ in subs for s in alt]
            whole = all(w for _, w in subs)
        else:
            return outs, False
        if len(outs) * len(sub) > _MAX_VARIANTS:
            return outs, False
        outs = [o + s for o in outs for s in sub]
        if not whole:
            return outs, False
    return outs, True


def endpoint_needles(pattern: str) -> tuple[tuple[str, ...], bool]:
    """The literal starts of a path pattern's matches (``/v1/messages$`` → ``/v1/messages``).

    Args:
        pattern: An endpoint row's path pattern (searched anywhere in the path).

    Returns:
        Strings one of which every match starts with (empty when the pattern does
        not begin with a literal ``/``: the caller must then not trust them), and
        whether the pattern is anchored at the start of the path (``^``).
    """
    parsed = _parser.parse(pattern)
    anchored = bool(parsed) and parsed[0] == (_parser.AT, _parser.AT_BEGINNING)
    found, _ = _expand(parsed)
    if not found or not all(s.startswith("/") for s in found):
        return (), anchored
    return tuple(dict.fromkeys(found)), anchored


def kernel_path_filter() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(prefixes, parts) for the eBPF capture (see the module docstring).

    Raises:
        ValueError: an endpoint row's pattern gives no needle (it must be
            covered some other way before the kernel may judge paths).
    """
    prefixes, parts = list(LLM_PATH_PREFIXES), list(LLM_PATH_PARTS)
    for family in FAMILIES:
        for endpoint in family.endpoints:
            needles, anchored = endpoint_needles(endpoint.path.pattern)
            if not needles:
                raise ValueError(f"{family.name}/{endpoint.api}: no literal path start")
            (prefixes if anchored else parts).extend(needles)
    return tuple(dict.fromkeys(prefixes)), tuple(dict.fromkeys(parts))
