"""Real-SDK drivers for Cohere v2 (``cohere``) and Bedrock Runtime (``boto3``).

Each driver makes one call against the stand-in and reports what the SDK
itself returned, normalised (input includes cache, output includes reasoning).
boto3 is pointed at the stand-in with ``endpoint_url`` and ``verify=CA`` and
signs with a fixed fake access key (SigV4, region us-east-1).
"""

from __future__ import annotations

from typing import Any

from tests.support.clients_common import Options, Result

__all__ = [
    "AWS_ACCESS_KEY_ID",
    "BEDROCK_CLAUDE",
    "BEDROCK_NOVA",
    "COHERE_CHAT_MODEL",
    "COHERE_EMBED_MODEL",
    "COHERE_KEY",
    "bedrock_converse",
    "bedrock_invoke",
    "cohere_chat",
    "cohere_embed",
]

COHERE_KEY = "standin-FAKE-cohere-00000000000000000000"
COHERE_CHAT_MODEL = "command-a-03-2025"
COHERE_EMBED_MODEL = "embed-v4.0"
AWS_ACCESS_KEY_ID = "AKIASTANDINFAKE00000"
_AWS_SECRET = "standin/FAKE/secret/0000000000000000000000"
BEDROCK_NOVA = "us.amazon.nova-lite-v1:0"
BEDROCK_CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"


def _norm(inp: int, out: int, cread: int = 0, cwrite: int = 0) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "cache_read_tokens": cread,
            "cache_write_tokens": cwrite, "reasoning_tokens": 0}


# ---------------------------------------------------------------------------- Cohere


def _cohere(opts: Options, flags: tuple[str, ...] = ()) -> Any:
    import cohere
    import httpx

    return cohere.ClientV2(api_key=COHERE_KEY, base_url=opts.base_url,
                           httpx_client=httpx.Client(verify=opts.ca or True,
                                                     headers=opts.header(*flags)))


def _cohere_label() -> str:
    import cohere

    return f"cohere-python {cohere.__version__}"


def _cohere_usage(usage: Any) -> dict[str, int] | None:
    billed = getattr(usage, "billed_units", None)
    if billed is None:
        return None
    inp, out = int(billed.input_tokens or 0), int(billed.output_tokens or 0)
    cached = int(getattr(usage, "cached_tokens", 0) or 0)
    return _norm(inp, out, min(cached, inp))


def cohere_chat(opts: Options, *, stream: bool = False) -> Result:
    """``ClientV2.chat`` / ``chat_stream`` with one user message."""
    client = _cohere(opts)
    messages = [{"role": "user", "content": opts.prompt}]
    res = Result(client=_cohere_label(), model=COHERE_CHAT_MODEL, stream=stream,
                 http_version="1.1")
    if not stream:
        resp = client.chat(model=COHERE_CHAT_MODEL, messages=messages)
        res.usage = _cohere_usage(resp.usage)
        res.raw_usage = resp.usage.model_dump(mode="json") if resp.usage else None
        return res
    for ev in client.chat_stream(model=COHERE_CHAT_MODEL, messages=messages):
        if ev.type == "message-end" and ev.delta is not None:
            res.usage = _cohere_usage(ev.delta.usage)
            res.raw_usage = ev.delta.usage.model_dump(mode="json") if ev.delta.usage else None
    return res


def cohere_embed(opts: Options) -> Result:
    """``ClientV2.embed`` of two texts."""
    client = _cohere(opts)
    resp = client.embed(model=COHERE_EMBED_MODEL, texts=[opts.prompt, "and a second text"],
                        input_type="search_document", embedding_types=["float"])
    billed = resp.meta.billed_units if resp.meta is not None else None
    res = Result(client=_cohere_label(), model=COHERE_EMBED_MODEL, http_version="1.1")
    if billed is not None:
        res.usage = _norm(int(billed.input_tokens or 0), 0)
        res.raw_usage = billed.model_dump(mode="json")
    return res


# --------------------------------------------------------------------------- Bedrock


def _bedrock(opts: Options, flags: tuple[str, ...] = ()) -> Any:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=opts.base_url,
        verify=opts.ca or True, aws_access_key_id=AWS_ACCESS_KEY_ID,
        aws_secret_access_key=_AWS_SECRET,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    header = opts.header(*flags)
    if header:
        def add(request: Any, **_: Any) -> None:
            for name, value in header.items():
                request.headers[name] = value
        client.meta.events.register("before-sign.bedrock-runtime.*", add)
    return client


def _boto_label() -> str:
    import boto3

    return f"boto3 {boto3.__version__}"


def _converse_usage(u: dict[str, Any]) -> dict[str, int]:
    cread, cwrite = int(u.get("cacheReadInputTokens", 0)), int(u.get("cacheWriteInputTokens", 0))
    return _norm(int(u["inputTokens"]) + cread + cwrite, int(u["outputTokens"]), cread, cwrite)


def bedrock_converse(opts: Options, *, stream: bool = False,
                     flags: tuple[str, ...] = ()) -> Result:
    """``converse`` / ``converse_stream`` on Nova Lite (us inference profile)."""
    client = _bedrock(opts, flags)
    kwargs: dict[str, Any] = {
        "modelId": BEDROCK_NOVA,
        "messages": [{"role": "user", "content": [{"text": opts.prompt}]}],
        "inferenceConfig": {"maxTokens": 64},
    }
    res = Result(client=_boto_label(), model=BEDROCK_NOVA, stream=stream, http_version="1.1")
    if not stream:
        resp = client.converse(**kwargs)
        res.raw_usage = resp["usage"]
        res.usage = _converse_usage(resp["usage"])
        return res
    for ev in client.converse_stream(**kwargs)["stream"]:
        if "metadata" in ev:
            res.raw_usage = ev["metadata"]["usage"]
            res.usage = _converse_usage(ev["metadata"]["usage"])
    return res


def bedrock_invoke(opts: Options, *, stream: bool = False) -> Result:
    """``invoke_model`` / ``invoke_model_with_response_stream`` with an Anthropic body."""
    import json

    client = _bedrock(opts)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                       "messages": [{"role": "user", "content": opts.prompt}]})
    res = Result(client=_boto_label(), model=BEDROCK_CLAUDE, stream=stream, http_version="1.1")
    if not stream:
        resp = client.invoke_model(modelId=BEDROCK_CLAUDE, body=body,
                                   contentType="application/json", accept="application/json")
        usage = json.loads(resp["body"].read())["usage"]
        res.raw_usage = usage
        res.usage = _norm(int(usage["input_tokens"]), int(usage["output_tokens"]))
        return res
    resp = client.invoke_model_with_response_stream(modelId=BEDROCK_CLAUDE, body=body,
                                                    contentType="application/json")
    for ev in resp["body"]:
        chunk = json.loads(ev["chunk"]["bytes"])
        metrics = chunk.get("amazon-bedrock-invocationMetrics")
        if metrics:
            res.raw_usage = metrics
            res.usage = _norm(int(metrics["inputTokenCount"]), int(metrics["outputTokenCount"]))
    return res


