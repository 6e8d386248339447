"""Where a request went, and whether its connection can carry LLM API calls.

The pipeline judges a connection by its first request: if neither the host (a
built-in or configured LLM host, see :mod:`lumen_sniff.providers.hosts`) nor
the path looks like an LLM API, the connection is ignored and capture stops
copying it. The path prefixes and parts come from the API family rows
(:mod:`lumen_sniff.providers.table`). The path test is generous on purpose:
ignoring a real LLM connection loses events, while keeping a stray one only
costs CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

from lumen_sniff.providers.hosts import provider_for_host
from lumen_sniff.providers.table import LLM_PATH_PARTS, LLM_PATH_PREFIXES

__all__ = ["LLM_PATH_PREFIXES", "HostRouter", "host_of"]


def host_of(authority: str) -> str:
    """The host of a ``Host``/``:authority`` value, lower case, without the port.

    Args:
        authority: ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.

    Returns:
        The host (an IPv6 address without brackets), or "".
    """
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority[1:]
    if authority.count(":") == 1:
        return authority.partition(":")[0].rstrip(".")
    return authority.rstrip(".")


class HostRouter:
    """Host lookups against the configured hosts, memoised per authority.

    Args:
        hosts: Configured host (``host``, ``host:port``, ``*.domain``) → provider.
    """

    def __init__(self, hosts: Mapping[str, str]) -> None:
        self.hosts: Mapping[str, str] = dict(hosts)
        self._hosts: dict[str, str] = {}
        self._known: dict[str, bool] = {}

    def host_of(self, authority: str) -> str:
        """:func:`host_of`, memoised (the same few authorities repeat)."""
        host = self._hosts.get(authority)
        if host is None:
            if len(self._hosts) >= 4096:
                self._hosts.clear()
            host = self._hosts[authority] = host_of(authority)
        return host

    def looks_like_llm(self, authority: str, path: str) -> bool:
        """True when a request to this host and path may be an LLM API call.

        Args:
            authority: ``Host``/``:authority`` value.
            path: Request path without the query.

        Returns:
            True for a known or configured LLM host, or an LLM-looking path.
        """
        if path.startswith(("http://", "https://")):  # absolute-form via a proxy
            _, _, rest = path.partition("://")
            authority, slash, path = rest.partition("/")
            path = slash + path
        host = self.host_of(authority)
        known = self._known.get(host)
        if known is None:
            if len(self._known) >= 4096:
                self._known.clear()
            known = self._known[host] = provider_for_host(host, self.hosts) is not None
        if known:
            return True
        return path.startswith(LLM_PATH_PREFIXES) or any(part in path for part in LLM_PATH_PARTS)
