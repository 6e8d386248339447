"""Drivers for clients without an LLM SDK: httpx (HTTP/2), curl, node fetch, raw Gemini/Ollama.

Each still parses the answer the way such a client would (JSON body, SSE
``data:`` lines, NDJSON lines, a streamed JSON array) and reports the usage it
found there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.clients_common import (
    ANTHROPIC_KEY,
    GOOGLE_KEY,
    OPENAI_KEY,
    Options,
    Result,
    anthropic_usage,
    chat_usage,
    gemini_usage,
    ollama_usage,
)

__all__ = ["curl_chat", "gemini_embed", "gemini_stream_json_array", "httpx_chat", "node_fetch",
           "ollama"]

_NODE_SCRIPT = Path(__file__).with_name("clients_node.js")
_MODEL = "gpt-4o-mini"


def _chat_body(opts: Options, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": _MODEL, "messages": [{"role": "user", "content": opts.prompt}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _sse_usage(text: str) -> tuple[str | None, Any]:
    """Model and last non-null usage from OpenAI SSE text."""
    model, usage = None, None
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            obj = json.loads(line[6:])
            model = obj.get("model", model)
            usage = obj.get("usage") or usage
    return model, usage


def _httpx_label() -> str:
    import httpx

    return f"httpx {httpx.__version__}"


def httpx_chat(opts: Options, *, stream: bool) -> Result:
    """POST chat completions with ``httpx.Client(http2=True)``."""
    import httpx

    headers = {"authorization": f"Bearer {OPENAI_KEY}", **opts.header()}
    res = Result(client=_httpx_label() + " http2", stream=stream)
    with httpx.Client(http2=True, verify=opts.ca or True) as client:
        url = opts.base_url + "/v1/chat/completions"
        if stream:
            with client.stream("POST", url, json=_chat_body(opts, True), headers=headers) as r:
                text = "".join(r.iter_text())
            res.model, res.raw_usage = _sse_usage(text)
        else:
            r = client.post(url, json=_chat_body(opts, False), headers=headers)
            obj = r.json()
            res.model, res.raw_usage = obj.get("model"), obj.get("usage")
    res.status, res.http_version = r.status_code, r.http_version.removeprefix("HTTP/")
    res.usage = chat_usage(res.raw_usage)
    return res


def curl_chat(opts: Options, *, stream: bool) -> Result:
    """POST chat completions with ``curl --http2`` (ALPN h2 over TLS)."""
    version = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    res = Result(client=version.stdout.split()[0] + " " + version.stdout.split()[1], stream=stream)
    cmd = ["curl", "-sS", "--http2", "-X", "POST", "-H", f"authorization: Bearer {OPENAI_KEY}",
           "-H", "content-type: application/json", "--data-binary",
           json.dumps(_chat_body(opts, stream)), "-w", "\n%{http_code} %{http_version}"]
    if opts.ca:
        cmd += ["--cacert", opts.ca]
    if stream:
        cmd.append("-N")
    for name, value in opts.header().items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, opts.base_url + "/v1/chat/completions"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    body, _, tail = out.rpartition("\n")
    status, http_version = tail.split()
    res.status, res.http_version = int(status), http_version
    if stream:
        res.model, res.raw_usage = _sse_usage(body)
    else:
        obj = json.loads(body)
        res.model, res.raw_usage = obj.get("model"), obj.get("usage")
    res.usage = chat_usage(res.raw_usage)
    return res


def node_fetch(opts: Options, mode: str) -> Result:
    """Run ``clients_node.js`` (Node's built-in fetch) in ``mode``."""
    env = dict(os.environ)
    if opts.ca:
        env["NODE_EXTRA_CA_CERTS"] = opts.ca
    args = ["node", str(_NODE_SCRIPT), mode, opts.base_url, opts.prompt,
            json.dumps(opts.header()), OPENAI_KEY if mode.startswith("chat") else ANTHROPIC_KEY]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"node driver failed: {out.stderr.strip()}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    res = Result(client=f"node-fetch {got['node']}", stream=mode.endswith("stream"),
                 model=got.get("model"), status=got["status"], raw_usage=got.get("usage"),
                 http_version="1.1")
    if mode.startswith("anthropic"):
        res.usage = anthropic_usage(got.get("usage"))
    else:
        res.usage = chat_usage(got.get("usage"))
    return res


def ollama(opts: Options, api: str, *, stream: bool) -> Result:
    """Ollama native /api/chat or /api/generate over plaintext (NDJSON when streaming)."""
    import httpx

    body: dict[str, Any] = {"model": "llama3.2", "stream": stream}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": opts.prompt}]
    else:
        body["prompt"] = opts.prompt
    res = Result(client=_httpx_label(), stream=stream)
    final: dict[str, Any] = {}
    with httpx.Client(verify=opts.ca or True) as client, client.stream(
            "POST", f"{opts.base_url}/api/{api}", json=body, headers=opts.header()) as r:
        for line in r.iter_lines():
            if line.strip():
                final = json.loads(line)
    res.status, res.http_version = r.status_code, r.http_version.removeprefix("HTTP/")
    res.model = final.get("model")
    res.raw_usage = {k: final[k] for k in ("prompt_eval_count", "eval_count") if k in final}
    res.usage = ollama_usage(final)
    return res


def gemini_stream_json_array(opts: Options) -> Result:
    """streamGenerateContent without alt=sse (a streamed JSON array), as raw httpx clients use."""
    import httpx

    url = f"{opts.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": opts.prompt}]}]}
    res = Result(client=_httpx_label(), stream=True)
    with httpx.Client(verify=opts.ca or True) as client:
        r = client.post(url, json=body, headers={"x-goog-api-key": GOOGLE_KEY, **opts.header()})
    items = r.json()
    res.status, res.http_version = r.status_code, r.http_version.removeprefix("HTTP/")
    res.model = items[-1].get("modelVersion")
    res.raw_usage = items[-1].get("usageMetadata")
    res.usage = gemini_usage(res.raw_usage)
    res.extra["chunks"] = len(items)
    return res


def gemini_embed(opts: Options) -> Result:
    """batchEmbedContents through raw httpx (google-genai 1.16 drops its usageMetadata)."""
    import httpx

    model = "gemini-embedding-2"
    url = f"{opts.base_url}/v1beta/models/{model}:batchEmbedContents"
    body = {"requests": [{"model": f"models/{model}",
                          "content": {"parts": [{"text": opts.prompt}]}}]}
    with httpx.Client(verify=opts.ca or True) as client:
        r = client.post(url, json=body, headers={"x-goog-api-key": GOOGLE_KEY, **opts.header()})
    obj = r.json()
    res = Result(client=_httpx_label(), model=model, status=r.status_code,
                 http_version=r.http_version.removeprefix("HTTP/"),
                 raw_usage=obj.get("usageMetadata"))
    res.usage = gemini_usage(res.raw_usage) if res.raw_usage else None
    return res
