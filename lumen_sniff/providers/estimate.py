"""Token estimates for responses that carry no usage. Pure; never raises.

When the wire has no usage (an OpenAI stream without ``include_usage``, a body
or stream cut off, a server that never reports), lumen-sniff estimates and
marks the event ``estimated``. The heuristic:

* **Input.** If the request body parsed, the text an API bills for is
  collected: message/content/system/instructions/prompt/input strings, Gemini
  ``parts[].text``, and the JSON of ``tools``/``functions``. Tokens are
  ``ceil(utf8_bytes / 4)`` (the usual ~4 bytes per token of English text with
  BPE tokenizers) plus 4 per message for role and separators. If the body was
  cut or is not JSON, ``ceil(body_size / 4)`` over the whole body.
* **Output.** For a stream, one non-empty content delta ≈ one token (servers
  flush roughly a token per chunk). For a non-stream body,
  ``ceil(completion_chars / 4)``.
* **tiktoken.** If ``tiktoken`` is installed *and* its ``o200k_base`` encoding is
  already in its local cache, it counts the collected text instead of the
  4-bytes rule. It is never allowed to download: this module does no network
  I/O, and the sandbox it runs in has none.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from hashlib import sha1
from typing import Any

from lumen_sniff.providers._json import INVALID, parse
from lumen_sniff.providers.base import RequestInfo

__all__ = ["BYTES_PER_TOKEN", "estimate_input_tokens", "estimate_output_tokens", "text_tokens"]

BYTES_PER_TOKEN = 4
"""UTF-8 bytes per token assumed by the heuristic."""
_PER_MESSAGE = 4
_TEXT_KEYS = ("content", "text", "system", "instructions", "prompt", "input", "thinking")
_JSON_KEYS = ("tools", "functions", "response_format")
_O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def text_tokens(text: str) -> int:
    """Tokens in ``text``: tiktoken when usable offline, else ceil(bytes / 4)."""
    if not text:
        return 0
    encode = _offline_encoder()
    if encode is not None:
        try:
            return len(encode(text))
        except Exception:  # a broken optional tokenizer must not break counting
            pass
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


def estimate_input_tokens(request: RequestInfo) -> int:
    """Estimate a request's input tokens from its body.

    Args:
        request: The request as the pipeline saw it (possibly cut).

    Returns:
        The estimated number of input tokens.
    """
    if request.body_truncated or not request.body:
        return math.ceil(request.body_size / BYTES_PER_TOKEN)
    doc = parse(request.body)
    if doc is INVALID:
        return math.ceil(request.body_size / BYTES_PER_TOKEN)
    pieces: list[str] = []
    messages = _collect(doc, pieces, 0)
    return text_tokens("\n".join(pieces)) + _PER_MESSAGE * messages


def estimate_output_tokens(*, deltas: int, chars: int) -> int:
    """Estimate output tokens: streamed content deltas, else ceil(chars / 4).

    Args:
        deltas: Streamed records that carried generated text.
        chars: Characters of generated text in a non-stream body.

    Returns:
        The estimated number of output tokens.
    """
    if deltas:
        return deltas
    return math.ceil(chars / BYTES_PER_TOKEN)


def _collect(node: Any, pieces: list[str], depth: int, texty: bool = False) -> int:
    """Gather billable text under ``node``; return how many messages were seen.

    ``texty`` is True for a list under a text key (``"input": ["a", "b"]``),
    whose bare strings count; other string lists (``"stop"``) do not.
    """
    if depth > 32:
        return 0
    messages = 0
    if isinstance(node, dict):
        if "role" in node:
            messages += 1
        for key, value in node.items():
            if key in _JSON_KEYS and value:
                pieces.append(json.dumps(value, separators=(",", ":")))
            elif isinstance(value, str):
                if key in _TEXT_KEYS:
                    pieces.append(value)
            elif isinstance(value, dict | list):
                messages += _collect(value, pieces, depth + 1, key in _TEXT_KEYS)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str):
                if texty:
                    pieces.append(item)
            else:
                messages += _collect(item, pieces, depth + 1, texty)
    return messages


@lru_cache(maxsize=1)
def _offline_encoder() -> Callable[[str], list[int]] | None:
    """tiktoken's o200k encoder if it loads from the local cache; never downloads."""
    try:
        import tiktoken  # optional
    except ImportError:
        return None
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    if not cache_dir:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not os.path.exists(os.path.join(cache_dir, sha1(_O200K_URL.encode()).hexdigest())):
        return None
    try:
        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # offline, corrupt cache, unknown version: fall back
        return None
    encode: Callable[[str], list[int]] = encoding.encode_ordinary
    return encode
