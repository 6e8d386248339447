"""The records that flow between lumen-sniff's stages, in data-flow order.

capture --Chunk--> protocol.tracker --HttpEvent--> pipeline (exchange assembly,
providers, pricing) --UsageEvent--> sinks.

Every record is a frozen, keyword-only, slotted dataclass. Units are in the
names (``ts_ns``, ``lost_bytes``, ``cost_usd``); money is ``Decimal``. Times are
wall-clock UNIX nanoseconds: capture backends convert kernel clocks before a
Chunk is built, so the pipeline never reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

__all__ = [
    "USAGE_FLAGS",
    "BodyData",
    "Chunk",
    "ConnClosed",
    "ConnKey",
    "Desync",
    "Direction",
    "HttpEvent",
    "IgnoreConnection",
    "MessageEnd",
    "PipelineOutput",
    "ProcessInfo",
    "RequestHead",
    "ResponseHead",
    "Role",
    "Usage",
    "UsageEvent",
    "UsageSource",
]

Headers = tuple[tuple[str, str], ...]
"""Header fields in wire order; names lower-cased, values decoded as latin-1."""


class Direction(enum.IntEnum):
    """Which way bytes moved, seen from the observed endpoint."""

    EGRESS = 0
    """Written by the observed process (SSL_write), or sent by a flow's initiator."""
    INGRESS = 1
    """Read by the observed process (SSL_read), or sent by a flow's responder."""


class Role(enum.IntEnum):
    """Which half of an HTTP exchange a message belongs to."""

    REQUEST = 0
    RESPONSE = 1


class UsageSource(enum.StrEnum):
    """Where an event's token counts came from."""

    REPORTED = "reported"
    """Read from the usage the API itself sent."""
    ESTIMATED = "estimated"
    """Counted by lumen-sniff (no usage on the wire, or the body was cut)."""
    NONE = "none"
    """No usage could be had (errors, or nothing to count)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessInfo:
    """Who made the call, as the capture backend saw it."""

    pid: int
    """Process id (tgid)."""
    tid: int = 0
    """Thread id of the call that produced the chunk."""
    comm: str = ""
    """Process name from the process leader, not the thread."""
    uid: int = 0
    """Real user id."""
    cgroup_id: int = 0
    """cgroup v2 id (inode of the cgroup directory)."""
    exe: str | None = None
    """Executable path, resolved in user space."""
    container: str | None = None
    """Container id, when the cgroup path names one."""
    unit: str | None = None
    """systemd unit, when the cgroup path names one."""
    service: str | None = None
    """Service name: systemd service, else container, else from the command line."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnKey:
    """Identity of one connection, unique within a capture source."""

    source: str
    """Capture backend: "bpf", "pcap" or "replay"."""
    pid: int
    """tgid for eBPF (an SSL* is only unique within a process); 0 for packets."""
    handle: int
    """The SSL* pointer for eBPF; a flow number for packet capture."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Chunk:
    """A run of bytes from one direction of one connection."""

    conn: ConnKey
    """The connection the bytes belong to."""
    direction: Direction
    """Which way they moved."""
    offset: int
    """Position of ``data[0]`` in this direction's byte stream."""
    ts_ns: int
    """Wall-clock time of the capture, UNIX nanoseconds."""
    data: bytes
    """The plaintext bytes that were copied."""
    lost_bytes: int = 0
    """Bytes that followed ``data`` in the same call but were not copied."""
    closed: bool = False
    """The connection ended after this chunk (SSL_free, TCP FIN/RST); data may be empty."""
    process: ProcessInfo | None = None
    """The process that owns the connection, when known."""
    peer: tuple[str, int] | None = None
    """Remote (address, port), when the backend can tell."""


# --------------------------------------------------------------------- HTTP events


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestHead:
    """A request's head: request line (HTTP/1.1) or HEADERS (HTTP/2)."""

    conn: ConnKey
    """Connection it arrived on."""
    stream: int
    """HTTP/2 stream id, or the exchange's sequence number on an HTTP/1.1 connection."""
    ts_ns: int
    """Time its first byte was captured."""
    method: str
    """Request method, upper case."""
    target: str
    """Path and query, as sent."""
    authority: str
    """Host header or :authority, lower-cased; may be empty."""
    headers: Headers
    """All header fields (pseudo-headers excluded)."""
    http_version: str
    """"1.1", "1.0" or "2"."""
    process: ProcessInfo | None = None
    """Process that owns the connection, when known."""
    peer: tuple[str, int] | None = None
    """Remote (address, port), when known."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ResponseHead:
    """A final (non-1xx) response head."""

    conn: ConnKey
    """Connection it arrived on."""
    stream: int
    """Matches the RequestHead's ``stream``."""
    ts_ns: int
    """Time its first byte was captured (time to first byte ends here)."""
    status: int
    """HTTP status code."""
    headers: Headers
    """All header fields (pseudo-headers excluded)."""
    http_version: str
    """"1.1", "1.0" or "2"."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BodyData:
    """Body bytes of a message, with transfer and content encodings removed."""

    conn: ConnKey
    """Connection it arrived on."""
    stream: int
    """Matches the head's ``stream``."""
    role: Role
    """Request or response body."""
    ts_ns: int
    """Time these bytes were captured."""
    data: bytes
    """Decoded body bytes."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageEnd:
    """A message ended: complete, or cut off (close, reset, desync)."""

    conn: ConnKey
    """Connection it arrived on."""
    stream: int
    """Matches the head's ``stream``."""
    role: Role
    """Which message ended."""
    ts_ns: int
    """Time the end was seen."""
    complete: bool
    """True when the framing said the message was whole."""
    reason: str = ""
    """Why an incomplete message ended ("closed", "reset", "desync", "too_large"…)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Desync:
    """The parser lost its place in a byte stream; what it skipped is counted."""

    conn: ConnKey
    """Connection affected."""
    stream: int | None
    """Stream affected, if one."""
    ts_ns: int
    """Time it was noticed."""
    reason: str
    """Short machine-readable cause, used as a counter label."""
    lost_bytes: int = 0
    """Bytes skipped or never captured."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnClosed:
    """The connection ended; no more events will come for it."""

    conn: ConnKey
    """Connection that ended."""
    ts_ns: int
    """Time it ended."""


HttpEvent = RequestHead | ResponseHead | BodyData | MessageEnd | Desync | ConnClosed


# ------------------------------------------------------------------ usage and events

USAGE_FLAGS: dict[str, str] = {
    "reasoning_exceeds_output": "reasoning tokens > output tokens (reasoning is a subset)",
    "cache_exceeds_input": "cache reads + cache writes > input tokens (both are subsets)",
}
"""Names of the self-contradictions a reported usage can carry, and what they mean."""



@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """Token counts in the normalised (genai-prices) convention.

    ``input_tokens`` includes cache reads and writes; ``output_tokens`` includes
    reasoning. The cache and reasoning counts are subsets of those two.
    """

    input_tokens: int = 0
    """Every billed input token, cache reads and writes included."""
    output_tokens: int = 0
    """Every billed output token, reasoning/thinking included."""
    cache_read_tokens: int = 0
    """Input tokens read from a prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to a prompt cache."""
    reasoning_tokens: int = 0
    """Output tokens spent on reasoning/thinking."""
    source: UsageSource = UsageSource.NONE
    """Reported by the API, estimated, or none."""
    provider_cost_usd: Decimal | None = None
    """Cost the provider itself reported (OpenRouter ``usage.cost``)."""
    flags: tuple[str, ...] = ()
    """Ways the reported counts contradict themselves (see :data:`USAGE_FLAGS`);
    the counts are kept as reported, never "fixed"."""


_PUBLIC = MappingProxyType({"shown": "public"})
_EXTRA = MappingProxyType({"shown": "extra"})
_HIDDEN: MappingProxyType[str, str] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageEvent:
    """One LLM API call, costed and attributed: what the store, API and replay emit.

    Each field's metadata says where it shows: ``"shown": "public"`` (the public
    event fields, in this order), ``"extra"`` (serialised after them) or absent
    (kept, not serialised); ``"stored": False`` would keep it out of the store.
    :mod:`lumen_sniff.eventfields` derives every sink's field list from these.
    """

    id: str = field(metadata=_PUBLIC)
    """Deterministic id: the same capture always gives the same ids."""
    started_at: str = field(metadata=_PUBLIC)
    """Request start, ISO 8601 UTC with microseconds and a Z."""
    started_ns: int = field(metadata=_HIDDEN)
    """Request start, UNIX nanoseconds."""
    provider: str = field(metadata=_PUBLIC)
    """"openai", "anthropic", "google", "azure", "openrouter", "ollama", …"""
    api: str = field(metadata=_PUBLIC)
    """API shape: "chat", "responses", "embeddings", "messages", "generate_content", …"""
    model: str | None = field(metadata=_PUBLIC)
    """Model name as the response (else the request) named it."""
    stream: bool = field(metadata=_PUBLIC)
    """The response was streamed."""
    status: int = field(metadata=_PUBLIC)
    """HTTP status; 0 when no response head was seen."""
    input_tokens: int = field(metadata=_PUBLIC)
    """See :class:`Usage`."""
    output_tokens: int = field(metadata=_PUBLIC)
    """See :class:`Usage`."""
    cache_read_tokens: int = field(metadata=_PUBLIC)
    """See :class:`Usage`."""
    cache_write_tokens: int = field(metadata=_PUBLIC)
    """See :class:`Usage`."""
    reasoning_tokens: int = field(metadata=_PUBLIC)
    """See :class:`Usage`."""
    cost_usd: Decimal | None = field(metadata=_PUBLIC)
    """Priced cost; None when the model is unpriced (never 0 by default)."""
    usage_source: UsageSource = field(metadata=_PUBLIC)
    """Reported, estimated or none."""
    pid: int | None = field(metadata=_PUBLIC)
    """Process id of the caller, when known."""
    process: str | None = field(metadata=_PUBLIC)
    """Process name of the caller, when known."""
    duration_ms: float | None = field(metadata=_PUBLIC)
    """Request start to response end."""
    ttft_ms: float | None = field(metadata=_PUBLIC)
    """Request start to first response byte."""
    api_key_id: str | None = field(metadata=_PUBLIC)
    """Salted key fingerprint plus last 4 characters; never the key."""
    tenant: str | None = field(metadata=_PUBLIC)
    """Tenant/user from configured headers or body fields."""
    host: str = field(default="", metadata=_EXTRA)
    """Host the call went to."""
    path: str = field(default="", metadata=_EXTRA)
    """Request path without the query string."""
    complete: bool = field(default=True, metadata=_EXTRA)
    """False when the response was cut off or desynced."""
    error_type: str | None = field(default=None, metadata=_EXTRA)
    """Provider error type ("rate_limit_error", "overloaded_error", …), if any."""
    price_source: str | None = field(default=None, metadata=_EXTRA)
    """What priced the event: "genai-prices <version>", "override", or None."""
    provider_cost_usd: Decimal | None = field(default=None, metadata=_EXTRA)
    """Cost the provider itself reported, when it did."""
    exe: str | None = field(default=None, metadata=_EXTRA)
    """Executable path of the caller."""
    container: str | None = field(default=None, metadata=_EXTRA)
    """Container id of the caller."""
    unit: str | None = field(default=None, metadata=_EXTRA)
    """systemd unit of the caller."""
    usage_flags: tuple[str, ...] = field(default=(), metadata=_EXTRA)
    """Ways the reported usage contradicts itself (:data:`USAGE_FLAGS`), sorted;
    the counts are as reported."""
    service: str | None = field(default=None, metadata=_EXTRA)
    """Who spent it: systemd service, else container, else a name from the command line."""
    extra: dict[str, str] = field(metadata=_HIDDEN, default_factory=dict)
    """Small string facts kept for diagnosis (never prompt or completion text)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IgnoreConnection:
    """The pipeline judged a connection not to be LLM traffic: stop copying it."""

    conn: ConnKey
    """Connection to ignore."""
    reason: str
    """Why ("not_http", "not_llm")."""


PipelineOutput = UsageEvent | IgnoreConnection
