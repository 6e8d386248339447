"""classify(): provider by host, shape by path/headers/body, request facts."""

from __future__ import annotations

import pytest

from lumen_sniff.model import Headers
from lumen_sniff.providers import Classification, RequestInfo, classify, provider_for_host

JSON_CT: Headers = (("content-type", "application/json"),)
CHAT = b'{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}'


def req(
    host: str,
    target: str,
    body: bytes = CHAT,
    headers: Headers = JSON_CT,
    method: str = "POST",
    truncated: bool = False,
    size: int | None = None,
) -> RequestInfo:
    path, _, query = target.partition("?")
    return RequestInfo(
        method=method,
        host=host,
        path=path,
        query=query,
        headers=headers,
        body=body,
        body_size=len(body) if size is None else size,
        body_truncated=truncated,
    )


def c(
    provider: str, api: str, model: str | None, stream: bool, tenant: str | None = None
) -> Classification:
    return Classification(
        provider=provider, api=api, model=model, stream=stream, body_tenant=tenant
    )


GEM = b'{"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}'
MSG = b'{"max_tokens":10,"messages":[{"role":"user","content":"hi"}],"model":"claude-x"}'
ANTH: Headers = (("x-api-key", "k"), ("anthropic-version", "2023-06-01"))

TABLE = [
    # known hosts
    (req("api.openai.com", "/v1/chat/completions"), c("openai", "chat", "gpt-4o-mini", False)),
    (
        req("api.openai.com", "/v1/chat/completions", CHAT[:-1] + b',"stream":true,"user":"u-42"}'),
        c("openai", "chat", "gpt-4o-mini", True, "u-42"),
    ),
    (
        req(
            "api.openai.com",
            "/v1/responses",
            b'{"input":"hi","model":"o3","safety_identifier":"s1"}',
        ),
        c("openai", "responses", "o3", False, "s1"),
    ),
    (
        req("api.openai.com", "/v1/embeddings", b'{"input":"hi","model":"text-embedding-3-small"}'),
        c("openai", "embeddings", "text-embedding-3-small", False),
    ),
    (
        req(
            "api.openai.com", "/v1/completions", b'{"prompt":"hi","model":"gpt-3.5-turbo-instruct"}'
        ),
        c("openai", "completions", "gpt-3.5-turbo-instruct", False),
    ),
    (
        req("api.anthropic.com", "/v1/messages", MSG, ANTH),
        c("anthropic", "messages", "claude-x", False),
    ),
    (
        req(
            "api.anthropic.com",
            "/v1/messages?beta=true",
            MSG[:-1] + b',"stream":true,"metadata":{"user_id":"acct-7"}}',
            ANTH,
        ),
        c("anthropic", "messages", "claude-x", True, "acct-7"),
    ),
    (
        req(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            GEM,
        ),
        c("google", "generate_content", "gemini-2.5-flash", False),
    ),
    (
        req(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            GEM,
        ),
        c("google", "generate_content", "gemini-2.5-flash", True),
    ),
    (
        req(
            "generativelanguage.googleapis.com",
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            b"{}",
        ),
        c("google", "embed_content", "gemini-embedding-001", False),
    ),
    (
        req(
            "us-central1-aiplatform.googleapis.com",
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
            GEM,
        ),
        c("google", "generate_content", "gemini-2.0-flash", False),
    ),
    (
        req(
            "us-east5-aiplatform.googleapis.com",
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict",
            b'{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[]}',
        ),
        c("anthropic", "messages", "claude-sonnet-4@20250514", True),
    ),
    (
        req(
            "myres.openai.azure.com",
            "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21",
            b'{"messages":[{"role":"user","content":"hi"}]}',
        ),
        c("azure", "chat", "prod-gpt4o", False),
    ),
    (
        req(
            "myres.cognitiveservices.azure.com",
            "/openai/deployments/emb/embeddings?api-version=2024-10-21",
            b'{"input":"x"}',
        ),
        c("azure", "embeddings", "emb", False),
    ),
    (
        req("openrouter.ai", "/api/v1/chat/completions"),
        c("openrouter", "chat", "gpt-4o-mini", False),
    ),
    (req("api.groq.com", "/openai/v1/chat/completions"), c("groq", "chat", "gpt-4o-mini", False)),
    (req("api.together.xyz", "/v1/chat/completions"), c("together", "chat", "gpt-4o-mini", False)),
    (req("api.deepseek.com", "/chat/completions"), c("deepseek", "chat", "gpt-4o-mini", False)),
    (req("api.mistral.ai", "/v1/chat/completions"), c("mistral", "chat", "gpt-4o-mini", False)),
    (req("api.x.ai", "/v1/chat/completions"), c("x-ai", "chat", "gpt-4o-mini", False)),
    (
        req("api.fireworks.ai", "/inference/v1/chat/completions"),
        c("fireworks", "chat", "gpt-4o-mini", False),
    ),
    # unknown hosts: recognised by path + headers + body
    (req("10.0.0.5", "/v1/chat/completions"), c("openai", "chat", "gpt-4o-mini", False)),
    (req("127.0.0.1", "/chat/completions"), c("openai", "chat", "gpt-4o-mini", False)),
    (req("127.0.0.1", "/v1/messages", MSG, ANTH), c("anthropic", "messages", "claude-x", False)),
    (req("127.0.0.1", "/v1/messages", MSG), c("anthropic", "messages", "claude-x", False)),
    (
        req("127.0.0.1", "/proxy/messages", MSG, (("anthropic-version", "2023-06-01"),)),
        c("anthropic", "messages", "claude-x", False),
    ),
    (
        req(
            "127.0.0.1",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            GEM,
            (("x-goog-api-key", "k"),),
        ),
        c("google", "generate_content", "gemini-2.5-flash", False),
    ),
    (
        req(
            "localhost",
            "/api/chat",
            b'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}',
        ),
        c("ollama", "ollama_chat", "llama3.2", True),
    ),
    (
        req("localhost", "/api/generate", b'{"model":"llama3.2","prompt":"hi","stream":false}'),
        c("ollama", "ollama_generate", "llama3.2", False),
    ),
    (
        req("localhost", "/api/embed", b'{"model":"all-minilm","input":"hi"}'),
        c("ollama", "ollama_embed", "all-minilm", False),
    ),
    (
        req("ollama.com", "/api/chat", b'{"model":"gpt-oss:120b","messages":[]}'),
        c("ollama", "ollama_chat", "gpt-oss:120b", True),
    ),
]


@pytest.mark.parametrize(
    ("request_info", "expected"), TABLE, ids=[f"{r.host}{r.path}" for r, _ in TABLE]
)
def test_classification_table(request_info: RequestInfo, expected: Classification) -> None:
    assert classify(request_info) == expected


NOT_LLM = [
    req("api.openai.com", "/v1/models", b"", method="GET"),
    req("api.openai.com", "/v1/chat/completions", b"", method="GET"),
    req("api.openai.com", "/v1/files", b"{}"),
    req("api.anthropic.com", "/v1/messages/count_tokens", MSG, ANTH),
    req("api.anthropic.com", "/v1/messages/batches", MSG, ANTH),
    req("generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:countTokens", GEM),
    req("generativelanguage.googleapis.com", "/v1beta/models", b"", method="GET"),
    req("example.com", "/api/chat", b'{"text":"hello"}'),
    req("example.com", "/chat/completions", b"not json"),
    req("example.com", "/messages", b'{"to":"bob"}'),
    req("example.com", "/v1/threads/t1/messages", b'{"role":"user","content":"x"}'),
    req("example.com", "/index.html", b"", method="GET"),
]


@pytest.mark.parametrize(
    "request_info", NOT_LLM, ids=[f"{r.method} {r.host}{r.path}" for r in NOT_LLM]
)
def test_not_llm_traffic(request_info: RequestInfo) -> None:
    assert classify(request_info) is None


def test_gemini_path_alone_is_enough_on_unknown_host() -> None:
    got = classify(req("example.com", "/v1beta/models/x:generateContent", GEM))
    assert got == c("google", "generate_content", "x", False)
    assert classify(req("example.com", "/models/x:generateContent", GEM)) is None


def test_config_hosts_extend_and_override() -> None:
    hosts = {
        "llm-gateway.internal": "openai",
        "api.openai.com": "my-proxy",
        "*.corp.example": "vllm",
        "gw:8443": "litellm",
    }
    assert classify(req("llm-gateway.internal", "/chat/completions", b"{}"), hosts) == c(
        "openai", "chat", None, False
    )
    assert classify(req("api.openai.com", "/v1/chat/completions"), hosts) == c(
        "my-proxy", "chat", "gpt-4o-mini", False
    )
    assert classify(req("a.b.corp.example", "/v1/completions", b'{"prompt":"x"}'), hosts) == c(
        "vllm", "completions", None, False
    )
    assert classify(req("gw", "/v1/messages", MSG, ANTH), hosts) == c(
        "litellm", "messages", "claude-x", False
    )
    # without config an unknown host needs body evidence outside /v1/
    assert classify(req("llm-gateway.internal", "/chat/completions", b"{}")) is None


def test_provider_for_host_builtin_suffixes() -> None:
    assert provider_for_host("europe-west4-aiplatform.googleapis.com") == "google"
    assert provider_for_host("x.services.ai.azure.com") == "azure"
    assert provider_for_host("apim.azure-api.net") == "azure"
    assert provider_for_host("api.openai.com.") == "openai"
    assert provider_for_host("openai.com") is None
    assert provider_for_host("") is None


def test_truncated_body_uses_bounded_regex() -> None:
    head = (
        b'{"model":"gpt-4.1","stream":true,"user":"tenant-9","messages":[{"role":"user","content":"'
        + b"x" * 1000
    )
    got = classify(
        req("api.openai.com", "/v1/chat/completions", head, truncated=True, size=300_000)
    )
    assert got == c("openai", "chat", "gpt-4.1", True, "tenant-9")


def test_truncated_body_model_after_messages_is_unknown() -> None:
    # SDKs put "model" after "messages": a cut body may never reach it.
    head = b'{"messages":[{"role":"user","content":"' + b"y" * 500
    got = classify(req("10.0.0.5", "/v1/chat/completions", head, truncated=True, size=300_000))
    assert got == c("openai", "chat", None, False)


def test_role_user_is_not_a_tenant_and_nested_model_ignored_when_parsed() -> None:
    body = (
        b'{"messages":[{"role":"user","content":"\\"model\\": \\"evil\\""}],'
        b'"tools":[{"model":"t"}],"model":"m"}'
    )
    assert classify(req("api.openai.com", "/v1/chat/completions", body)) == c(
        "openai", "chat", "m", False
    )


def test_big_prompt_parsed_once_and_classified() -> None:
    body = (
        b'{"messages":[{"role":"user","content":"'
        + b"z" * 300_000
        + b'"}],"model":"gpt-4o","stream":true}'
    )
    assert classify(req("api.openai.com", "/v1/chat/completions", body)) == c(
        "openai", "chat", "gpt-4o", True
    )
