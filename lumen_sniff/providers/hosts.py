"""Known LLM API hosts → provider name, and the lookup that config extends.

The built-in entries come from the ``hosts`` and ``host_patterns`` of the API
family rows (:mod:`lumen_sniff.providers.table`). Provider names are
genai-prices provider ids where one exists ("x-ai", not "xai"; "aws" for
Bedrock), so the pricing stage can use them as they are. A host listed in the
config (``[providers.hosts]``) wins over the built-in table. Config keys may be
``host``, ``host:port`` (the port is ignored: the providers see hosts without
ports) or ``*.domain`` (any subdomain).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lumen_sniff.providers.table import FAMILIES

__all__ = ["BUILTIN_HOSTS", "BUILTIN_PATTERNS", "provider_for_host"]

BUILTIN_HOSTS: Mapping[str, str] = {
    host: provider for family in FAMILIES for host, provider in family.hosts.items()
}
"""Exact host → provider."""

BUILTIN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), provider)
    for family in FAMILIES
    for pattern, provider in family.host_patterns
)
"""(whole-host pattern, provider), tried in order after the exact table."""


def provider_for_host(host: str, extra: Mapping[str, str] | None = None) -> str | None:
    """The provider a host belongs to, or None for an unknown host.

    Args:
        host: Lower-case host without port.
        extra: Config entries (host, ``host:port`` or ``*.domain`` → provider).

    Returns:
        The provider name, or None.
    """
    if not host:
        return None
    host = host.rstrip(".")
    if extra:
        found = extra.get(host)
        if found:
            return found
        for key, provider in extra.items():
            name = key.lower().rstrip(".")
            if name.startswith("["):  # [v6]:port
                name = name[: name.find("]") + 1]
            elif name.count(":") == 1:
                name = name.partition(":")[0]
            if name.strip("[]") == host.strip("[]"):
                return provider
            if name.startswith("*.") and host.endswith(name[1:]):
                return provider
    found = BUILTIN_HOSTS.get(host)
    if found:
        return found
    for pattern, provider in BUILTIN_PATTERNS:
        if pattern.fullmatch(host) is not None:
            return provider
    return None
