"""Known LLM API hosts → provider name, and the lookup that config extends.

Provider names are genai-prices provider ids where one exists ("x-ai", not
"xai"), so the pricing stage can use them as they are. A host listed in the
config (``[providers.hosts]``) wins over the built-in table. Config keys may be
``host``, ``host:port`` (the port is ignored: the providers see hosts without
ports) or ``*.domain`` (any subdomain).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["BUILTIN_HOSTS", "BUILTIN_SUFFIXES", "provider_for_host"]

BUILTIN_HOSTS: Mapping[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google",
    "openrouter.ai": "openrouter",
    "api.openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "api.together.ai": "together",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral",
    "codestral.mistral.ai": "mistral",
    "api.x.ai": "x-ai",
    "api.fireworks.ai": "fireworks",
    "api.cerebras.ai": "cerebras",
    "api.perplexity.ai": "perplexity",
    "api.moonshot.ai": "moonshotai",
    "api.moonshot.cn": "moonshotai",
    "api.novita.ai": "novita",
    "api.z.ai": "zai",
    "open.bigmodel.cn": "zhipuai",
    "api.minimax.io": "minimax",
    "api.minimaxi.com": "minimax",
    "api.githubcopilot.com": "github-copilot",
    "inference.baseten.co": "baseten",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "ollama.com": "ollama",
}
"""Exact host → provider."""

BUILTIN_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("-aiplatform.googleapis.com", "google"),  # Vertex AI: {region}-aiplatform…
    (".openai.azure.com", "azure"),
    (".cognitiveservices.azure.com", "azure"),
    (".services.ai.azure.com", "azure"),
    (".azure-api.net", "azure"),
)
"""Host suffix → provider, tried in order after the exact table."""


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
    for suffix, provider in BUILTIN_SUFFIXES:
        if host.endswith(suffix):
            return provider
    return None
