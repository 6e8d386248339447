"""OpenAI-shape responses: Chat Completions, legacy Completions, Embeddings, Responses.

The same reader serves every OpenAI-compatible server (Azure, OpenRouter, Groq,
Together, DeepSeek, Mistral, xAI, vLLM, llama.cpp, Ollama's /v1…):

* ``usage.prompt_tokens`` → input; ``prompt_tokens_details.cached_tokens`` (or
  DeepSeek's ``prompt_cache_hit_tokens``) → cache read; OpenRouter's
  ``prompt_tokens_details.cache_write_tokens`` → cache write.
* ``usage.completion_tokens`` → output; ``completion_tokens_details.reasoning_tokens``
  → reasoning. OpenAI counts reasoning inside ``completion_tokens``; a server
  whose ``total_tokens`` equals prompt + completion + reasoning (xAI does this)
  counts it outside, so it is added to output.
* OpenRouter's ``usage.cost`` → ``provider_cost_usd``.
* An error chunk in a stream (OpenRouter: ``"error": {…}`` with
  ``finish_reason: "error"``) fails the call, but the usage it carries is what
  was billed: it is kept as reported, and the event names the error.
* Counts are kept as reported, never clamped; the extractor flags a usage
  that contradicts itself (reasoning > output, cache > input).
* Streams: usage is in the last chunk (``choices: []`` with ``include_usage``;
  Groq nests it in ``x_groq.usage``; llama.cpp puts it on the ``finish_reason``
  chunk, with ``timings`` as a fallback; vLLM's continuous usage repeats it on
  every chunk). Usage is cumulative everywhere, so the last one wins.

Only chunks whose bytes show ``"usage": {``, ``"x_groq"``, ``"timings"`` or
``"error": {`` are parsed; the rest are counted with a regular expression.
"""

from __future__ import annotations

import re
from typing import Any

from lumen_sniff.providers._json import (
    INVALID,
    as_decimal,
    as_int,
    dig,
    first_string,
    has_object,
    parse,
)
from lumen_sniff.providers.error_shapes import envelope_error_type, json_envelope
from lumen_sniff.providers.family import ApiFamily, Endpoint, Evidence
from lumen_sniff.providers.reader import Reader, Tally, carries_text, text_chars

__all__ = ["FAMILY", "ChatReader", "ResponsesReader", "apply_openai_usage"]

_FINISH = re.compile(rb'"finish_reason"\s*:\s*"')
_USAGE_OBJECT = re.compile(rb'"usage"[ \t\r\n]*:[ \t\r\n]*\{')  # has_object(data, b'"usage"')
_TYPE_KEY = b'"type"'


def apply_openai_usage(t: Tally, usage: dict[str, Any]) -> None:
    """Set the tally from an OpenAI-style usage object (chat or Responses names)."""
    prompt = as_int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = as_int(usage.get("completion_tokens", usage.get("output_tokens")))
    pdet = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cdet = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    cached = as_int(dig(pdet, "cached_tokens")) or as_int(usage.get("prompt_cache_hit_tokens"))
    reasoning = as_int(dig(cdet, "reasoning_tokens"))
    total = usage.get("total_tokens")
    if (
        reasoning
        and isinstance(total, int)
        and total == prompt + completion + reasoning
        and total != prompt + completion
    ):
        completion += reasoning
    # As reported, never clamped: a contradiction is flagged by the extractor.
    t.input = prompt
    t.output = completion
    t.cache_read = cached
    t.cache_write = as_int(dig(pdet, "cache_write_tokens"))
    t.reasoning = reasoning
    cost = as_decimal(usage.get("cost"))
    if cost is not None:
        t.cost_usd = cost
    t.reported = True


class ChatReader(Reader):
    """Chat Completions, legacy Completions and Embeddings (stream and not)."""

    __slots__ = ()

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if data == b"[DONE]":
            t.ended = True
            return
        if t.model is None:
            t.model = first_string(data, b'"model"')
        if carries_text(data):
            t.deltas += 1
        # Most chunks say "finish_reason":null and "usage":null, once each: find()
        # settles those at a third of the cost of the regular expressions, which
        # decide everything else. (find, not `in`: `in` first tries an int.)
        find, startswith = data.find, data.startswith
        i = find(b'"finish_reason"')
        if i < 0 or (
            startswith(b'"finish_reason":null', i) and find(b'"finish_reason"', i + 15) < 0
        ):
            finished = False
        else:
            finished = _FINISH.search(data) is not None
        i = find(b'"usage"')
        if i < 0 or (startswith(b'"usage":null', i) and find(b'"usage"', i + 7) < 0):
            usage = False
        else:
            usage = _USAGE_OBJECT.search(data) is not None
        if (
            usage
            or find(b'"x_groq"') >= 0
            or find(b'"timings"') >= 0
            or has_object(data, b'"error"')
        ):
            doc = parse(data)
            if doc is INVALID or not isinstance(doc, dict):
                t.bad_json += 1
            else:
                self._chunk(doc, finished)
        if finished:
            t.ended = True

    def _chunk(self, doc: dict[str, Any], finished: bool) -> None:
        t = self.t
        usage = doc.get("usage")
        if isinstance(doc.get("error"), dict):
            # The call failed mid-stream. An error chunk can still carry the usage
            # billed so far (OpenRouter): the wire's counts are kept, as final.
            t.error_type = envelope_error_type(doc)
            t.failed = True
            if isinstance(usage, dict):
                apply_openai_usage(t, usage)
                t.final = True
            return
        if not isinstance(usage, dict):
            usage = dig(doc, "x_groq", "usage")
        if isinstance(usage, dict):
            apply_openai_usage(t, usage)
            choices = doc.get("choices")
            t.final = t.final or finished or choices == [] or choices is None
            return
        timings = doc.get("timings")
        if isinstance(timings, dict) and not t.reported:
            # llama.cpp without usage: prompt_n / predicted_n are token counts.
            t.input = as_int(timings.get("prompt_n"))
            t.output = as_int(timings.get("predicted_n"))
            t.reported = True
            t.final = finished

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        err = envelope_error_type(doc) if "error" in doc else None
        if err is not None and isinstance(doc.get("error"), dict):
            t.error_type = err
        model = doc.get("model")
        if isinstance(model, str):
            t.model = model
        for choice in doc.get("choices") or ():
            if isinstance(choice, dict):
                t.out_chars += text_chars(dig(choice, "message", "content"))
                t.out_chars += text_chars(choice.get("text"))
                for call in dig(choice, "message", "tool_calls") or ():
                    t.out_chars += text_chars(dig(call, "function", "arguments"))
        usage = doc.get("usage")
        if isinstance(usage, dict):
            apply_openai_usage(t, usage)
            t.final = True
        elif isinstance(doc.get("timings"), dict):
            self._chunk(doc, True)
        t.ended = True


class ResponsesReader(Reader):
    """The Responses API: usage in ``response.completed`` / ``.incomplete`` / ``.failed``."""

    __slots__ = ()

    _FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def record(self, event: str, data: bytes) -> None:
        t = self.t
        t.records += 1
        if data == b"[DONE]":
            t.ended = True
            return
        etype = event
        if etype == "message":  # no event: line (some gateways): the type is in the data
            etype = first_string(data, _TYPE_KEY) or ""
        if etype.endswith(".delta"):
            t.deltas += 1
            return
        if etype in self._FINAL or etype == "error":
            doc = parse(data)
            if not isinstance(doc, dict):
                t.bad_json += 1
                return
            if etype == "error":
                t.error_type = _code(doc) or envelope_error_type(doc) or "error"
                t.failed = True
                return
            response = doc.get("response")
            if isinstance(response, dict):
                self._response(response)
            t.ended = True
            if etype == "response.failed":
                t.failed = True
                t.error_type = _code(dig(response, "error")) or "response_failed"
        elif t.model is None and etype == "response.created":
            t.model = first_string(data, b'"model"')

    def _response(self, response: dict[str, Any]) -> None:
        t = self.t
        model = response.get("model")
        if isinstance(model, str):
            t.model = model
        usage = response.get("usage")
        if isinstance(usage, dict):
            apply_openai_usage(t, usage)
            t.final = True

    def document(self, doc: Any) -> None:
        t = self.t
        if not isinstance(doc, dict):
            return
        t.records += 1
        if isinstance(doc.get("error"), dict) and "usage" not in doc:
            t.error_type = envelope_error_type(doc)
        for item in doc.get("output") or ():
            if isinstance(item, dict):
                t.out_chars += text_chars(item.get("content"))
                t.out_chars += text_chars(item.get("arguments"))
        self._response(doc)
        t.ended = True


def _code(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    for key in ("code", "type"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value[:64]
    return None


FAMILY = ApiFamily(
    name="openai",
    provider="openai",
    endpoints=(
        Endpoint(path=re.compile(r"/chat/completions$"), api="chat", reader=ChatReader),
        Endpoint(
            path=re.compile(r"/responses/compact$"), api="responses_compact", reader=ResponsesReader
        ),
        Endpoint(path=re.compile(r"/responses$"), api="responses", reader=ResponsesReader),
        Endpoint(
            path=re.compile(r"/embeddings$"), api="embeddings", reader=ChatReader, no_output=True
        ),
        Endpoint(path=re.compile(r"/completions$"), api="completions", reader=ChatReader),
    ),
    path_model=re.compile(r"/openai/deployments/(?P<model>[^/]+)/"),
    evidence=Evidence(
        path_prefixes=("/v1/",),
        body_keys=frozenset({"model", "messages", "prompt", "input", "contents"}),
    ),
    error_shape=json_envelope,
    hosts={
        "api.openai.com": "openai",
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
    },
    host_patterns=(
        (r".+\.openai\.azure\.com", "azure"),
        (r".+\.cognitiveservices\.azure\.com", "azure"),
        (r".+\.services\.ai\.azure\.com", "azure"),
        (r".+\.azure-api\.net", "azure"),
    ),
    path_prefixes=(
        "/v1/",
        "/v1beta/",
        "/v1alpha/",
        "/v2/",
        "/openai/",
        "/api/v1/",
        "/api/openai/",
        "/chat/completions",
        "/completions",
        "/embeddings",
        "/responses",
        "/compatible-mode/",
        "/inference/",
        "/serving-endpoints/",
    ),
    path_parts=("/chat/completions", "/completions", "/embeddings", "/responses"),
)
"""OpenAI and every OpenAI-compatible server; tried last (its paths are the most generic)."""
