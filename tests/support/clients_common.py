"""Shared pieces of the real-client drivers: fake keys, the result record, normalisers.

Each driver reports the usage the client itself saw, converted to the project's
convention (input includes cache, output includes reasoning) by the functions
here, so a test compares the client's view with the pipeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANTHROPIC_KEY",
    "DEFAULT_PROMPT",
    "GOOGLE_KEY",
    "OPENAI_KEY",
    "Options",
    "Result",
    "anthropic_usage",
    "chat_usage",
    "gemini_usage",
    "ollama_usage",
    "responses_usage",
]

OPENAI_KEY = "sk-standin-FAKE-openai-0000000000000000000000000000"
ANTHROPIC_KEY = "sk-ant-standin-FAKE-anthropic-000000000000000000000"
GOOGLE_KEY = "AIzaStandinFAKEgoogle00000000000000000"
DEFAULT_PROMPT = "Say hello to the stand-in server"
"""Six words: 13 input tokens by the stand-in's token model."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """What every driver is given."""

    base_url: str
    """Stand-in root, e.g. ``https://127.0.0.1:PORT`` (no ``/v1``)."""
    ca: str | None
    """CA PEM the client must trust (None for plaintext)."""
    flags: tuple[str, ...] = ()
    """Extra ``x-standin-scenario`` flags."""
    prompt: str = DEFAULT_PROMPT
    """User prompt text."""
    concurrency: int = 3
    """Streams run at once by the concurrent scenario."""
    tenant: str | None = None
    """Sent as ``x-tenant-id`` when set (the daemon's default tenant header)."""

    def header(self, *flags: str) -> dict[str, str]:
        """The scenario header for ``flags`` plus the extra flags, and the tenant header."""
        all_flags = [*flags, *self.flags]
        out = {"x-standin-scenario": ",".join(all_flags)} if all_flags else {}
        if self.tenant:
            out["x-tenant-id"] = self.tenant
        return out


@dataclass(kw_only=True, slots=True)
class Result:
    """What a driver prints (one JSON line)."""

    client: str
    """Client library and version, e.g. ``openai-python 1.82.0``."""
    model: str | None = None
    """Model the response named."""
    status: int = 200
    """HTTP status the client saw."""
    stream: bool = False
    """The call streamed."""
    http_version: str | None = None
    """"1.1" or "2" when the client exposes it."""
    usage: dict[str, int] | None = None
    """Normalised usage the client reported (summed over ``calls``), None if none."""
    raw_usage: Any = None
    """The usage object as the client exposed it (for diagnosis)."""
    error: str | None = None
    """Provider error type, if the call failed."""
    calls: int = 1
    """How many API calls the scenario made."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Scenario-specific facts."""


def _get(obj: Any, *path: str) -> int:
    for key in path:
        if obj is None:
            return 0
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return int(obj or 0)


def _norm(inp: int, out: int, cread: int = 0, cwrite: int = 0, reason: int = 0) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cread,
            "cache_write_tokens": cwrite, "reasoning_tokens": reason}


def chat_usage(u: Any) -> dict[str, int] | None:
    """OpenAI chat/embeddings usage (prompt/completion tokens) normalised."""
    if u is None:
        return None
    return _norm(_get(u, "prompt_tokens"), _get(u, "completion_tokens"),
                 _get(u, "prompt_tokens_details", "cached_tokens"), 0,
                 _get(u, "completion_tokens_details", "reasoning_tokens"))


def responses_usage(u: Any) -> dict[str, int] | None:
    """OpenAI Responses usage normalised."""
    if u is None:
        return None
    return _norm(_get(u, "input_tokens"), _get(u, "output_tokens"),
                 _get(u, "input_tokens_details", "cached_tokens"), 0,
                 _get(u, "output_tokens_details", "reasoning_tokens"))


def anthropic_usage(u: Any) -> dict[str, int] | None:
    """Anthropic usage normalised: wire input excludes both cache counts."""
    if u is None:
        return None
    cread = _get(u, "cache_read_input_tokens")
    cwrite = _get(u, "cache_creation_input_tokens")
    return _norm(_get(u, "input_tokens") + cread + cwrite, _get(u, "output_tokens"),
                 cread, cwrite, 0)


def gemini_usage(u: Any) -> dict[str, int] | None:
    """Gemini usageMetadata (SDK snake_case or wire camelCase) normalised."""
    if u is None:
        return None
    if isinstance(u, dict):
        prompt, cand = _get(u, "promptTokenCount"), _get(u, "candidatesTokenCount")
        cached, thoughts = _get(u, "cachedContentTokenCount"), _get(u, "thoughtsTokenCount")
    else:
        prompt, cand = _get(u, "prompt_token_count"), _get(u, "candidates_token_count")
        cached, thoughts = _get(u, "cached_content_token_count"), _get(u, "thoughts_token_count")
    return _norm(prompt, cand + thoughts, cached, 0, thoughts)


def ollama_usage(final: dict[str, Any]) -> dict[str, int] | None:
    """Ollama's final object (prompt_eval_count/eval_count) normalised."""
    if not final.get("done"):
        return None
    return _norm(_get(final, "prompt_eval_count"), _get(final, "eval_count"))


def add_usage(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    """Sum two normalised usages (None counts as nothing)."""
    if a is None:
        return b
    if b is None:
        return a
    return {k: a[k] + b[k] for k in a}
