"""The API family rows, in the order requests are tried, and what is derived from them.

Adding a family: write its module (reader + ``FAMILY`` row) and add the row
here, before any family whose paths would also match its requests. Nothing
else names a family. See docs/architecture.md, "How to add a provider".
"""

from __future__ import annotations

from collections.abc import Mapping

from lumen_sniff.providers import anthropic, bedrock, cohere, gemini, ollama, openai
from lumen_sniff.providers.family import ApiFamily, Endpoint

__all__ = ["ENDPOINTS", "FAMILIES", "LLM_PATH_PARTS", "LLM_PATH_PREFIXES"]

FAMILIES: tuple[ApiFamily, ...] = (
    gemini.FAMILY,
    anthropic.FAMILY,
    bedrock.FAMILY,
    cohere.FAMILY,
    ollama.FAMILY,
    openai.FAMILY,  # last: its path suffixes are the most generic
)
"""Every family, tried in order."""


def _endpoints() -> Mapping[str, tuple[ApiFamily, Endpoint]]:
    out: dict[str, tuple[ApiFamily, Endpoint]] = {}
    for family in FAMILIES:
        for endpoint in family.endpoints:
            out.setdefault(endpoint.api, (family, endpoint))
    return out


ENDPOINTS: Mapping[str, tuple[ApiFamily, Endpoint]] = _endpoints()
"""API name → its family and (first) endpoint row; API names are unique per family."""


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


LLM_PATH_PREFIXES: tuple[str, ...] = _unique([p for f in FAMILIES for p in f.path_prefixes])
"""Path prefixes of every family, for the connection filter."""
LLM_PATH_PARTS: tuple[str, ...] = _unique([p for f in FAMILIES for p in f.path_parts])
"""Path substrings of every family, for the connection filter."""
