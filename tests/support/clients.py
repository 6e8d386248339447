"""Real-client drivers: one real API call per process, reporting what the client saw.

``python -m tests.support.clients <scenario> --base-url URL --ca CAFILE`` runs
one scenario and prints one JSON line: the client and its version, model,
status, stream, http_version (when the client exposes it), the usage the
client itself reported (normalised: input includes cache, output includes
reasoning) plus its raw form, the provider error type if any, and how many
calls were made. Python SDKs trust the CA through their httpx client and
``SSL_CERT_FILE``; curl gets ``--cacert``; node gets ``NODE_EXTRA_CA_CERTS``.

``SCENARIOS`` maps each name to its driver and whether it needs the TLS or the
plaintext stand-in; ``python -m tests.support.clients --list`` prints them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support import clients_aws_cohere as aws_cohere
from tests.support import clients_raw as raw
from tests.support.clients_common import (
    ANTHROPIC_KEY,
    GOOGLE_KEY,
    OPENAI_KEY,
    Options,
    Result,
    add_usage,
    anthropic_usage,
    chat_usage,
    gemini_usage,
    responses_usage,
)

__all__ = ["SCENARIOS", "Scenario", "main", "run_scenario"]

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-5"
GEMINI_MODEL = "gemini-2.5-flash"


def _dump(obj: Any) -> Any:
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj


# ---------------------------------------------------------------------------- OpenAI


def _openai(opts: Options, *, is_async: bool = False) -> Any:
    import openai

    url, verify = opts.base_url + "/v1", opts.ca or True
    if is_async:
        return openai.AsyncOpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0,
                                  http_client=openai.DefaultAsyncHttpxClient(verify=verify))
    return openai.OpenAI(base_url=url, api_key=OPENAI_KEY, max_retries=0,
                         http_client=openai.DefaultHttpxClient(verify=verify))


def _openai_label() -> str:
    import openai

    return f"openai-python {openai.__version__}"


def _openai_error(exc: Any, res: Result) -> Result:
    body = exc.body if isinstance(exc.body, dict) else {}
    res.status = exc.status_code
    res.error = str(body.get("type") or body.get("code") or type(exc).__name__)
    return res


def _openai_chat(opts: Options, *, flags: tuple[str, ...] = (), stream: bool = False,
                 include_usage: bool = False) -> Result:
    import openai

    client = _openai(opts)
    res = Result(client=_openai_label(), stream=stream)
    kwargs: dict[str, Any] = {"model": OPENAI_MODEL,
                              "messages": [{"role": "user", "content": opts.prompt}],
                              "extra_headers": opts.header(*flags)}
    if stream:
        kwargs["stream"] = True
        if include_usage:
            kwargs["stream_options"] = {"include_usage": True}
    try:
        parsed = client.chat.completions.create(**kwargs)
    except openai.APIStatusError as exc:
        return _openai_error(exc, res)
    if not stream:
        res.model, res.raw_usage, res.usage = parsed.model, _dump(parsed.usage), \
            chat_usage(parsed.usage)
        return res
    for chunk in parsed:
        res.model = chunk.model
        if chunk.usage is not None:
            res.raw_usage, res.usage = _dump(chunk.usage), chat_usage(chunk.usage)
    return res


def _openai_responses(opts: Options, *, stream: bool = False,
                      flags: tuple[str, ...] = ()) -> Result:
    client = _openai(opts)
    res = Result(client=_openai_label(), stream=stream)
    if not stream:
        r = client.responses.create(model=OPENAI_MODEL, input=opts.prompt,
                                    extra_headers=opts.header(*flags))
        res.model, res.raw_usage, res.usage = r.model, _dump(r.usage), responses_usage(r.usage)
        return res
    events = client.responses.create(model=OPENAI_MODEL, input=opts.prompt, stream=True,
                                     extra_headers=opts.header(*flags))
    for event in events:
        if event.type == "response.completed":
            r = event.response
            res.model, res.raw_usage = r.model, _dump(r.usage)
            res.usage = responses_usage(r.usage)
    return res


def _openai_embeddings(opts: Options) -> Result:
    client = _openai(opts)
    r = client.embeddings.create(model="text-embedding-3-small", input=opts.prompt,
                                 extra_headers=opts.header())
    res = Result(client=_openai_label(), model=r.model, raw_usage=_dump(r.usage),
                 usage=chat_usage(r.usage))
    res.extra["dimensions"] = len(r.data[0].embedding)
    return res


def _openai_async_streams(opts: Options) -> Result:
    async def one(client: Any) -> tuple[str | None, Any]:
        stream = await client.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": opts.prompt}],
            stream=True, stream_options={"include_usage": True}, extra_headers=opts.header())
        model, usage = None, None
        async for chunk in stream:
            model = chunk.model
            usage = chunk.usage or usage
        return model, usage

    async def run() -> Result:
        client = _openai(opts, is_async=True)
        got = await asyncio.gather(*(one(client) for _ in range(opts.concurrency)))
        res = Result(client=_openai_label().replace("openai", "openai-async"), stream=True,
                     calls=len(got), model=got[0][0])
        for _, usage in got:
            res.usage = add_usage(res.usage, chat_usage(usage))
        res.raw_usage = [_dump(u) for _, u in got]
        return res

    return asyncio.run(run())


# ------------------------------------------------------------------------- Anthropic


def _anthropic(opts: Options, *, is_async: bool = False) -> Any:
    import anthropic

    url, verify = opts.base_url, opts.ca or True
    if is_async:
        return anthropic.AsyncAnthropic(
            base_url=url, api_key=ANTHROPIC_KEY, max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=verify))
    return anthropic.Anthropic(base_url=url, api_key=ANTHROPIC_KEY, max_retries=0,
                               http_client=anthropic.DefaultHttpxClient(verify=verify))


def _anthropic_label() -> str:
    import anthropic

    return f"anthropic-python {anthropic.__version__}"


def _anthropic_messages(opts: Options, *, mode: str = "create",
                        flags: tuple[str, ...] = ()) -> Result:
    import anthropic

    res = Result(client=_anthropic_label(), stream=mode != "create")
    kwargs: dict[str, Any] = {"model": ANTHROPIC_MODEL, "max_tokens": 64,
                              "messages": [{"role": "user", "content": opts.prompt}],
                              "extra_headers": opts.header(*flags)}
    try:
        if mode == "create":
            msg = _anthropic(opts).messages.create(**kwargs)
        elif mode == "stream":
            with _anthropic(opts).messages.stream(**kwargs) as stream:
                msg = stream.get_final_message()
        else:
            async def run() -> Any:
                async with _anthropic(opts, is_async=True).messages.stream(**kwargs) as stream:
                    return await stream.get_final_message()

            msg = asyncio.run(run())
    except anthropic.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        res.status = exc.status_code
        res.error = str((err or {}).get("type") or type(exc).__name__)
        return res
    res.model, res.raw_usage, res.usage = msg.model, _dump(msg.usage), anthropic_usage(msg.usage)
    return res


# ---------------------------------------------------------------------------- Gemini


def _genai(opts: Options, flags: tuple[str, ...]) -> Any:
    from google import genai
    from google.genai import types

    http = types.HttpOptions(base_url=opts.base_url + "/", headers=opts.header(*flags) or None,
                             client_args={"verify": opts.ca} if opts.ca else None)
    return genai.Client(api_key=GOOGLE_KEY, http_options=http)


def _genai_label() -> str:
    from google.genai import version

    return f"google-genai {version.__version__}"


def _gemini(opts: Options, *, stream: bool = False, flags: tuple[str, ...] = ()) -> Result:
    from google.genai import errors

    client = _genai(opts, flags)
    res = Result(client=_genai_label(), stream=stream)
    try:
        if not stream:
            r = client.models.generate_content(model=GEMINI_MODEL, contents=opts.prompt)
            res.model, meta = r.model_version, r.usage_metadata
        else:
            meta = None
            for chunk in client.models.generate_content_stream(model=GEMINI_MODEL,
                                                                contents=opts.prompt):
                res.model, meta = chunk.model_version, chunk.usage_metadata or meta
    except errors.APIError as exc:
        res.status, res.error = exc.code, exc.status
        return res
    res.raw_usage, res.usage = _dump(meta), gemini_usage(meta)
    return res


# ------------------------------------------------------------------------ the table


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """One driver scenario."""

    run: Callable[[Options], Result]
    """The driver."""
    tls: bool = True
    """Needs the TLS stand-in (else the plaintext one)."""


def _s(run: Callable[[Options], Result], tls: bool = True) -> Scenario:
    return Scenario(run=run, tls=tls)


SCENARIOS: dict[str, Scenario] = {
    "openai_chat": _s(lambda o: _openai_chat(o)),
    "openai_chat_cached": _s(lambda o: _openai_chat(o, flags=("cache_read",))),
    "openai_chat_reasoning": _s(lambda o: _openai_chat(o, flags=("reasoning",))),
    "openai_chat_stream_usage": _s(lambda o: _openai_chat(o, stream=True, include_usage=True)),
    "openai_chat_stream_nousage": _s(lambda o: _openai_chat(o, stream=True)),
    "openai_chat_error_429": _s(lambda o: _openai_chat(o, flags=("error_429",))),
    "openai_chat_stream_error_404": _s(
        lambda o: _openai_chat(o, flags=("error_404",), stream=True, include_usage=True)),
    "openai_responses": _s(lambda o: _openai_responses(o)),
    "openai_responses_stream": _s(lambda o: _openai_responses(o, stream=True,
                                                              flags=("reasoning",))),
    "openai_embeddings": _s(_openai_embeddings),
    "openai_async_streams": _s(_openai_async_streams),
    "anthropic_messages": _s(lambda o: _anthropic_messages(o)),
    "anthropic_messages_cache_write": _s(lambda o: _anthropic_messages(o, flags=("cache_write",))),
    "anthropic_stream": _s(lambda o: _anthropic_messages(o, mode="stream")),
    "anthropic_stream_cache_read": _s(
        lambda o: _anthropic_messages(o, mode="stream", flags=("cache_read",))),
    "anthropic_async_stream": _s(lambda o: _anthropic_messages(o, mode="async")),
    "anthropic_stream_gzip": _s(lambda o: _anthropic_messages(o, mode="stream",
                                                              flags=("gzip_sse",))),
    "anthropic_stream_midstream_error": _s(
        lambda o: _anthropic_messages(o, mode="stream", flags=("midstream_error",))),
    "anthropic_error_429": _s(lambda o: _anthropic_messages(o, flags=("error_429",))),
    "gemini_generate": _s(lambda o: _gemini(o)),
    "gemini_generate_cached": _s(lambda o: _gemini(o, flags=("cache_read", "reasoning"))),
    "gemini_stream": _s(lambda o: _gemini(o, stream=True)),
    "gemini_stream_error_400": _s(lambda o: _gemini(o, stream=True, flags=("error_400",))),
    "gemini_stream_json_array": _s(raw.gemini_stream_json_array),
    "gemini_embed": _s(raw.gemini_embed),
    "httpx_h2_chat": _s(lambda o: raw.httpx_chat(o, stream=False)),
    "httpx_h2_chat_stream": _s(lambda o: raw.httpx_chat(o, stream=True)),
    "curl_h2_chat": _s(lambda o: raw.curl_chat(o, stream=False)),
    "curl_h2_chat_stream": _s(lambda o: raw.curl_chat(o, stream=True)),
    "node_fetch_chat": _s(lambda o: raw.node_fetch(o, "chat")),
    "node_fetch_chat_stream": _s(lambda o: raw.node_fetch(o, "chat_stream")),
    "node_fetch_anthropic_stream": _s(lambda o: raw.node_fetch(o, "anthropic_stream")),
    "ollama_chat": _s(lambda o: raw.ollama(o, "chat", stream=False), tls=False),
    "ollama_chat_stream": _s(lambda o: raw.ollama(o, "chat", stream=True), tls=False),
    "ollama_generate_stream": _s(lambda o: raw.ollama(o, "generate", stream=True), tls=False),
    "llamacpp_chat_stream": _s(lambda o: _openai_chat(o, flags=("llamacpp",), stream=True),
                               tls=False),
    "plain_openai_chat": _s(lambda o: _openai_chat(o), tls=False),
    "cohere_chat": _s(lambda o: aws_cohere.cohere_chat(o)),
    "cohere_chat_stream": _s(lambda o: aws_cohere.cohere_chat(o, stream=True)),
    "cohere_embed": _s(aws_cohere.cohere_embed),
    "bedrock_converse": _s(lambda o: aws_cohere.bedrock_converse(o)),
    "bedrock_converse_cache_read": _s(
        lambda o: aws_cohere.bedrock_converse(o, flags=("cache_read",))),
    "bedrock_converse_stream": _s(lambda o: aws_cohere.bedrock_converse(o, stream=True)),
    "bedrock_invoke": _s(lambda o: aws_cohere.bedrock_invoke(o)),
    "bedrock_invoke_stream": _s(lambda o: aws_cohere.bedrock_invoke(o, stream=True)),
}
"""Every scenario by name."""


def run_scenario(name: str, opts: Options) -> dict[str, Any]:
    """Run scenario ``name`` in this process and return its JSON-ready result."""
    if opts.ca:
        # Clients that read the environment (httpx trust_env, google-genai) trust the CA.
        os.environ["SSL_CERT_FILE"] = opts.ca
    result = SCENARIOS[name].run(opts)
    return {"scenario": name, **dataclasses.asdict(result)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run one scenario and print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.clients")
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS))
    parser.add_argument("--base-url")
    parser.add_argument("--ca")
    parser.add_argument("--flags", default="", help="extra x-standin-scenario flags (a,b)")
    parser.add_argument("--prompt")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--tenant", help="send x-tenant-id (scenarios that take extra headers)")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list or not args.scenario:
        for name, sc in SCENARIOS.items():
            print(f"{name}\t{'tls' if sc.tls else 'plain'}")
        return 0
    if not args.base_url:
        parser.error("--base-url is required")
    opts = Options(base_url=args.base_url.rstrip("/"), ca=args.ca,
                   flags=tuple(f for f in args.flags.split(",") if f),
                   concurrency=args.concurrency, tenant=args.tenant,
                   **({"prompt": args.prompt} if args.prompt else {}))
    print(json.dumps(run_scenario(args.scenario, opts), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
