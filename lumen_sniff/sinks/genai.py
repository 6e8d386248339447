"""UsageEvent → OpenTelemetry GenAI semantic-convention values (pure, no OTel import).

Names follow the GenAI semantic conventions (status: Development):

* ``gen_ai.client.token.usage`` (histogram, ``{token}``): one point per call
  and ``gen_ai.token.type`` (``input``, ``output``), billable tokens only, and
  only when the provider reported them. An estimate is not a count we could
  obtain, so estimated and unknown usage record nothing here.
* ``gen_ai.client.operation.duration`` (histogram, ``s``), with ``error.type``
  on failures (HTTP status ≥ 400, no response, or a cut-off response).

Our own names, documented as such because no convention exists (yet):

* ``lumen.cost.usd`` (counter, ``{USD}``): priced cost; unpriced calls add
  nothing (never $0) and are counted by ``lumen.unpriced.calls``.
* ``lumen.token.usage.subset`` (counter, ``{token}``) with ``lumen.token.type``
  ``cache_read``, ``cache_write`` or ``reasoning``: subsets of the input and
  output counts above (the conventions' ``gen_ai.token.type`` has no such values).
* Log attributes under ``lumen.*`` (see :func:`log_attributes`).
"""

from __future__ import annotations

from decimal import Decimal

from lumen_sniff.model import UsageEvent, UsageSource

__all__ = [
    "DURATION_BUCKETS_S",
    "TOKEN_BUCKETS",
    "error_type",
    "log_attributes",
    "metric_attributes",
    "operation_name",
    "provider_name",
    "subset_points",
    "token_points",
]

TOKEN_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(14))
"""The conventions' boundaries for gen_ai.client.token.usage: 1, 4, 16 … 67108864."""
DURATION_BUCKETS_S: tuple[float, ...] = tuple(0.01 * 2**i for i in range(14))
"""The conventions' boundaries for gen_ai.client.operation.duration: 0.01 … 81.92 s."""

_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
}
"""Our provider names → the conventions' gen_ai.provider.name (others kept as is)."""

_OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "generate_content": "generate_content",
    "stream_generate_content": "generate_content",
    "generate": "text_completion",
}
"""Our API shapes → the conventions' gen_ai.operation.name (others kept as is)."""


def provider_name(event: UsageEvent) -> str:
    """The conventions' gen_ai.provider.name for the event's provider."""
    return _PROVIDERS.get(event.provider, event.provider)


def operation_name(event: UsageEvent) -> str:
    """The conventions' gen_ai.operation.name for the event's API shape."""
    return _OPERATIONS.get(event.api, event.api)


def _server(event: UsageEvent) -> tuple[str, int] | None:
    host = event.host
    if not host:
        return None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return name.strip("[]"), int(port)
    return host, 443  # a Host header without a port: the TLS default


def error_type(event: UsageEvent) -> str | None:
    """error.type for a failed call, None for a success."""
    if event.status >= 400:
        return event.error_type or str(event.status)
    if event.status == 0:
        return "no_response"
    if not event.complete:
        return "incomplete"
    return None


def metric_attributes(event: UsageEvent) -> dict[str, str | int]:
    """Attributes every GenAI metric point of this call carries.

    lumen-sniff keeps one model name per call (the response's when it names
    one, else the request's), so request and response model carry the same.
    """
    attrs: dict[str, str | int] = {
        "gen_ai.operation.name": operation_name(event),
        "gen_ai.provider.name": provider_name(event),
    }
    if event.model:
        attrs["gen_ai.request.model"] = event.model
        attrs["gen_ai.response.model"] = event.model
    server = _server(event)
    if server is not None:
        attrs["server.address"], attrs["server.port"] = server
    return attrs


def token_points(event: UsageEvent) -> list[tuple[int, str]]:
    """(count, gen_ai.token.type) for gen_ai.client.token.usage: reported usage only."""
    if event.usage_source is not UsageSource.REPORTED:
        return []
    return [(event.input_tokens, "input"), (event.output_tokens, "output")]


def subset_points(event: UsageEvent) -> list[tuple[int, str]]:
    """(count, lumen.token.type) of the cache and reasoning subsets (non-zero only)."""
    if event.usage_source is not UsageSource.REPORTED:
        return []
    points = [
        (event.cache_read_tokens, "cache_read"),
        (event.cache_write_tokens, "cache_write"),
        (event.reasoning_tokens, "reasoning"),
    ]
    return [(n, kind) for n, kind in points if n > 0]


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def log_attributes(event: UsageEvent) -> dict[str, str | int | float | bool]:
    """Attributes of the one log record of a call: usage, cost and attribution.

    Never prompt or completion text (the event holds none). Usage attributes
    are present only when usage is known; ``lumen.usage.source`` says whether
    they were reported or estimated. ``lumen.cost.usd`` is absent when unpriced.
    """
    attrs: dict[str, str | int | float | bool] = dict(metric_attributes(event))
    if event.usage_source is not UsageSource.NONE:
        attrs["gen_ai.usage.input_tokens"] = event.input_tokens
        attrs["gen_ai.usage.output_tokens"] = event.output_tokens
        attrs["gen_ai.usage.cache_read.input_tokens"] = event.cache_read_tokens
        attrs["gen_ai.usage.cache_creation.input_tokens"] = event.cache_write_tokens
        attrs["gen_ai.usage.reasoning.output_tokens"] = event.reasoning_tokens
    optional: dict[str, object] = {
        "error.type": error_type(event),
        "lumen.cost.usd": _money(event.cost_usd),
        "lumen.price.source": event.price_source,
        "lumen.tenant": event.tenant,
        "lumen.api_key.id": event.api_key_id,
        "process.pid": event.pid,
        "process.executable.name": event.process,
        "process.executable.path": event.exe,
        "container.id": event.container,
        "lumen.systemd.unit": event.unit,
        "lumen.duration_ms": event.duration_ms,
        "lumen.ttft_ms": event.ttft_ms,
        "lumen.service": getattr(event, "service", None),
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})  # type: ignore[misc]
    attrs["lumen.event.id"] = event.id
    attrs["lumen.usage.source"] = event.usage_source.value
    attrs["lumen.api"] = event.api
    attrs["lumen.stream"] = event.stream
    attrs["lumen.complete"] = event.complete
    attrs["http.response.status_code"] = event.status
    return attrs
