"""The ApiFamily rows, and the two families added through them: Cohere v2 and Bedrock.

Cohere and Bedrock fixtures were recorded from the official SDKs (``cohere``,
``boto3``) against the stand-in (``make fixtures``). Each goes through the whole
pipeline whole, one byte per Chunk and in random splits, and must give the
SDK-reported usage, the provider and API from the rows, the cost genai-prices
computes on its own, and the key fingerprint (never the key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from lumen_sniff.model import Chunk, Headers, PipelineOutput, UsageEvent, UsageSource
from lumen_sniff.pipeline import Pipeline, PipelineSettings
from lumen_sniff.providers import RequestInfo, classify, new_extractor, provider_for_host
from lumen_sniff.providers.family import ApiFamily
from lumen_sniff.providers.reader import Reader
from lumen_sniff.providers.table import ENDPOINTS, FAMILIES
from tests.support.clients_aws_cohere import AWS_ACCESS_KEY_ID, COHERE_KEY
from tests.support.eventstream_wire import encode_message, event
from tests.support.fixtures import EXCHANGES_DIR, load_exchange

SALT = b"families"
NEW = sorted([*EXCHANGES_DIR.glob("cohere_*.json"), *EXCHANGES_DIR.glob("bedrock_*.json")])
_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _split(chunks: list[Chunk], rng: random.Random | None) -> list[Chunk]:
    out = []
    for chunk in chunks:
        data = chunk.data
        if len(data) < 2:
            out.append(chunk)
            continue
        if rng is None:
            bounds = list(range(len(data) + 1))
        else:
            inner = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
            bounds = [0, *inner, len(data)]
        for a, b in itertools.pairwise(bounds):
            out.append(
                dataclasses.replace(
                    chunk,
                    offset=chunk.offset + a,
                    data=data[a:b],
                    closed=chunk.closed and b == len(data),
                )
            )
    return out


def _run(chunks: list[Chunk]) -> list[PipelineOutput]:
    pipeline = Pipeline(PipelineSettings(key_salt=SALT))
    return [o for c in chunks for o in pipeline.feed(c)] + pipeline.close()


def _fingerprint(key: str) -> str:
    mac = hmac.new(SALT, key.encode(), hashlib.sha256).hexdigest()[:12]
    return f"k_{mac}…{key[-4:]}"


def test_the_new_fixtures_are_there() -> None:
    names = {p.stem for p in NEW}
    assert {
        "cohere_chat",
        "cohere_chat_stream",
        "cohere_embed",
        "bedrock_converse",
        "bedrock_converse_stream",
        "bedrock_invoke",
        "bedrock_invoke_stream",
        "bedrock_converse_cache_read",
    } <= names


@pytest.mark.parametrize("path", NEW, ids=[p.stem for p in NEW])
def test_sdk_fixture_exact_usage_cost_and_key(path: Path) -> None:
    chunks, expected = load_exchange(path)
    whole = _run(chunks)
    assert _run(_split(chunks, None)) == whole
    assert _run(_split(chunks, random.Random(path.stem))) == whole
    (ev,) = [o for o in whole if isinstance(o, UsageEvent)]
    bedrock = path.stem.startswith("bedrock")
    assert ev.provider == ("aws" if bedrock else "cohere")
    assert (
        ev.api
        == {
            "bedrock_converse": "converse",
            "bedrock_invoke": "invoke",
            "cohere_chat": "cohere_chat",
            "cohere_embed": "cohere_embed",
        }[path.stem.removesuffix("_stream").removesuffix("_cache_read")]
    )
    assert ev.model == expected["model"]
    assert ev.stream is expected["stream"]
    assert ev.complete and ev.error_type is None
    assert ev.usage_source is UsageSource.REPORTED
    for name in _TOKENS:
        assert getattr(ev, name) == expected[name], name
    priced = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=ev.input_tokens,
            output_tokens=ev.output_tokens,
            cache_read_tokens=ev.cache_read_tokens or None,
            cache_write_tokens=ev.cache_write_tokens or None,
        ),
        expected["model"],
        provider_id=ev.provider,
        genai_request_timestamp=datetime.fromtimestamp(ev.started_ns / 1e9, UTC),
    )
    assert ev.cost_usd is not None and ev.cost_usd > 0
    assert ev.cost_usd == Decimal(priced.total_price)
    key = AWS_ACCESS_KEY_ID if bedrock else COHERE_KEY
    assert ev.api_key_id == _fingerprint(key)
    assert key not in repr(ev)


# ------------------------------------------------------------------ classification


def _req(host: str, path: str, body: bytes = b"{}", headers: Headers = ()) -> RequestInfo:
    return RequestInfo(
        method="POST",
        host=host,
        path=path,
        query="",
        headers=headers,
        body=body,
        body_size=len(body),
        body_truncated=False,
    )


SIGV4: Headers = (
    ("x-amz-date", "20260217T234412Z"),
    (
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260217/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=host, Signature=00",
    ),
)


def test_bedrock_hosts_and_paths() -> None:
    assert provider_for_host("bedrock-runtime.eu-west-3.amazonaws.com") == "aws"
    assert provider_for_host("bedrock-runtime-fips.us-east-1.amazonaws.com") == "aws"
    assert provider_for_host("bedrock.us-east-1.amazonaws.com") is None
    assert provider_for_host("s3.amazonaws.com") is None
    host = "bedrock-runtime.us-west-2.amazonaws.com"
    cls = classify(_req(host, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"))
    assert cls is not None
    assert (cls.provider, cls.api, cls.model, cls.stream) == (
        "aws",
        "converse",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        False,
    )
    cls = classify(_req(host, "/model/amazon.nova-pro-v1%3A0/invoke-with-response-stream"))
    assert cls is not None and (cls.api, cls.stream) == ("invoke", True)
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.amazon.nova-lite-v1%3A0"
    cls = classify(_req(host, f"/model/{arn}/converse-stream"))
    assert cls is not None
    assert cls.model == "arn:aws:bedrock:us-east-1:123:inference-profile/us.amazon.nova-lite-v1:0"


def test_bedrock_on_an_unknown_host_needs_aws_evidence() -> None:
    assert classify(_req("10.0.0.5", "/model/m/converse")) is None
    assert classify(_req("10.0.0.5", "/model/m/converse", headers=SIGV4)) is not None
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    assert classify(_req("10.0.0.5", "/model/m/converse", body)) is not None


def test_cohere_v2() -> None:
    body = b'{"model":"command-a-03-2025","messages":[{"role":"user","content":"hi"}]}'
    cls = classify(_req("api.cohere.com", "/v2/chat", body))
    assert cls is not None
    assert (cls.provider, cls.api, cls.model, cls.stream) == (
        "cohere",
        "cohere_chat",
        "command-a-03-2025",
        False,
    )
    cls = classify(_req("127.0.0.1", "/v2/embed", b'{"model":"embed-v4.0","texts":["a"]}'))
    assert cls is not None and (cls.provider, cls.api) == ("cohere", "cohere_embed")
    assert classify(_req("127.0.0.1", "/v2/chat", b'{"foo":1}')) is None
    # Cohere's OpenAI-compatible endpoint is the OpenAI family, billed to Cohere.
    cls = classify(_req("api.cohere.com", "/compatibility/v1/chat/completions", body))
    assert cls is not None and (cls.provider, cls.api) == ("cohere", "chat")


def test_sigv4_access_key_id_is_the_fingerprinted_key() -> None:
    from lumen_sniff.providers.attribution import api_key_id

    assert api_key_id(SIGV4, "", SALT) == _fingerprint("AKIAIOSFODNN7EXAMPLE")
    basic: Headers = (("authorization", "Basic dXNlcjpwYXNz"),)
    assert api_key_id(basic, "", SALT) is None


# ------------------------------------------------------------------ errors and streams


def _extract(api_path: str, status: int, headers: Headers, body: list[bytes]) -> object:
    cls = classify(_req("bedrock-runtime.us-east-1.amazonaws.com", api_path))
    assert cls is not None
    ex = new_extractor(cls, _req("h", api_path), status, headers)
    for piece in body:
        ex.feed(piece)
    return ex.finish(complete=True)


def test_bedrock_error_type_from_the_header() -> None:
    headers: Headers = (
        ("content-type", "application/json"),
        ("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/"),
    )
    out = _extract("/model/m/converse", 429, headers, [b'{"message":"Too many requests"}'])
    assert out.error_type == "ThrottlingException"  # type: ignore[attr-defined]
    out = _extract(
        "/model/m/converse",
        400,
        (("content-type", "application/json"),),
        [b'{"__type":"com.amazon#ValidationException","message":"bad"}'],
    )
    assert out.error_type == "ValidationException"  # type: ignore[attr-defined]


def test_bedrock_stream_exception_fails_the_response() -> None:
    ct: Headers = (("content-type", "application/vnd.amazon.eventstream"),)
    body = event("messageStart", b'{"role":"assistant"}') + encode_message(
        [
            (":message-type", "exception"),
            (":exception-type", "modelStreamErrorException"),
            (":content-type", "application/json"),
        ],
        b'{"message":"boom"}',
    )
    out = _extract("/model/m/converse-stream", 200, ct, [body])
    assert out.error_type == "modelStreamErrorException"  # type: ignore[attr-defined]
    assert out.complete is False  # type: ignore[attr-defined]
    assert out.usage.source is UsageSource.NONE  # type: ignore[attr-defined]


def test_converse_cache_inside_input_is_not_counted_twice() -> None:
    ct: Headers = (("content-type", "application/json"),)
    doc = (
        b'{"usage":{"inputTokens":1037,"outputTokens":12,"totalTokens":1049,'
        b'"cacheReadInputTokens":1024,"cacheWriteInputTokens":0}}'
    )
    out = _extract("/model/m/converse", 200, ct, [doc])
    assert out.usage.input_tokens == 1037  # type: ignore[attr-defined]
    assert out.usage.cache_read_tokens == 1024  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- the rows


def test_api_names_are_unique_across_families() -> None:
    seen: dict[str, str] = {}
    for family in FAMILIES:
        for endpoint in family.endpoints:
            owner = seen.setdefault(endpoint.api, family.name)
            assert owner == family.name, f"{endpoint.api} in {owner} and {family.name}"
            assert issubclass(endpoint.reader, Reader)
            # new_extractor finds the row by API name: rows sharing one must read alike.
            _, first = ENDPOINTS[endpoint.api]
            assert (first.reader, first.framing, first.no_output) == (
                endpoint.reader,
                endpoint.framing,
                endpoint.no_output,
            )
    assert set(ENDPOINTS) == set(seen)


def test_every_family_is_a_row_in_its_own_module() -> None:
    for family in FAMILIES:
        assert isinstance(family, ApiFamily)
        assert family.endpoints and family.provider and family.error_shape is not None


@pytest.mark.parametrize(
    "module",
    [
        "providers/registry.py",
        "providers/extractor.py",
        "providers/hosts.py",
        "pipeline/routing.py",
    ],
)
def test_the_machinery_names_no_family(module: str) -> None:
    source = (Path(__file__).parents[2] / "lumen_sniff" / module).read_text()
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    body = code.split('"""', 2)[-1]  # past the module docstring
    for name in (
        "ollama",
        "gemini",
        "generate_content",
        "anthropic",
        "bedrock",
        "cohere",
        '"openai"',
        "google",
    ):
        assert name not in body, f"{module} names {name}"
