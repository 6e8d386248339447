"""The UsageEvent of a finished exchange: priced, attributed, with a deterministic id.

Used by :mod:`lumen_sniff.pipeline.assembler` once an exchange's response has ended (or
was cut off). Status ≥ 400 keeps only reported usage; unknown usage is
unpriced (``cost_usd`` None), never 0.
"""

from __future__ import annotations

import functools
import hashlib
import time
from decimal import Decimal

from lumen_sniff.model import ConnKey, ProcessInfo, RequestHead, Usage, UsageEvent, UsageSource
from lumen_sniff.pricing.prices import Pricer
from lumen_sniff.providers.attribution import KeyFingerprinter, tenant_of
from lumen_sniff.providers.base import Classification, Extraction, RequestInfo

__all__ = ["EventBuilder", "event_id", "iso_utc"]

_NO_USAGE = Usage()
_Caller = tuple[int | None, str | None, str | None, str | None, str | None, str | None]
_NO_CALLER: _Caller = (None, None, None, None, None, None)


class EventBuilder:
    """Turns finished exchanges into UsageEvents.

    Args:
        pricer: Prices usage.
        key_id: Fingerprints API keys.
        tenant_headers: Request headers naming the tenant, lower case, by priority.
        stats: Counters to update (``events``, ``unpriced``, ``estimated``,
            ``incomplete``).
    """

    def __init__(
        self,
        pricer: Pricer,
        key_id: KeyFingerprinter,
        tenant_headers: tuple[str, ...],
        stats: dict[str, int],
    ) -> None:
        self._pricer = pricer
        self._key_id = key_id
        self._tenant_headers = tenant_headers
        self.stats = stats

    def build(
        self,
        *,
        head: RequestHead,
        cls: Classification,
        request: RequestInfo,
        status: int,
        response_ts: int | None,
        extraction: Extraction,
        end_ns: int,
        transport_complete: bool,
        reason: str,
    ) -> UsageEvent:
        """The UsageEvent of one finished exchange.

        Args:
            head: The request head.
            cls: What the request was recognised as.
            request: The request as the providers saw it.
            status: Response status; 0 when no response head was seen.
            response_ts: Time of the response head, if one came.
            extraction: What the extractor read from the response.
            end_ns: Time the exchange ended.
            transport_complete: The response framing ended normally.
            reason: Why it ended early, when it did.

        Returns:
            The costed, attributed event.
        """
        started = head.ts_ns
        usage = _billable(extraction.usage, status)
        model = extraction.model or cls.model
        cost, price_source = self._cost(cls.provider, model, usage, status, started)
        complete = transport_complete and extraction.complete and response_ts is not None
        self._count(cost, usage, complete)
        pid, comm, exe, container, unit, service = _caller(head.process)
        return UsageEvent(
            id=event_id(head.conn, head.stream, started),
            started_at=iso_utc(started),
            started_ns=started,
            provider=cls.provider,
            api=cls.api,
            model=model,
            stream=extraction.stream,
            status=status,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=cost,
            usage_source=usage.source,
            duration_ms=_ms(end_ns - started) if response_ts is not None else None,
            ttft_ms=_ms(response_ts - started) if response_ts is not None else None,
            api_key_id=self._key_id(request.headers, request.query),
            tenant=tenant_of(request.headers, self._tenant_headers, cls.body_tenant),
            host=request.host,
            path=request.path,
            complete=complete,
            error_type=extraction.error_type,
            price_source=price_source,
            provider_cost_usd=usage.provider_cost_usd,
            usage_flags=usage.flags,
            extra={} if complete else {"end": reason or "incomplete"},
            pid=pid,
            process=comm,
            exe=exe,
            container=container,
            unit=unit,
            service=service,
        )

    def _cost(
        self, provider: str, model: str | None, usage: Usage, status: int, started_ns: int
    ) -> tuple[Decimal | None, str | None]:
        """(cost, price source); unknown usage is an unknown cost, never 0."""
        if usage.source is UsageSource.NONE and status < 400:
            return None, None
        if "cache_exceeds_input" in usage.flags:
            return None, None  # no uncached input count to price: unknown, not a guess
        priced = self._pricer.price(provider, model, usage, started_ns)
        return priced.cost_usd, priced.source

    def _count(self, cost: Decimal | None, usage: Usage, complete: bool) -> None:
        stats = self.stats
        stats["events"] += 1
        if cost is None:
            stats["unpriced"] += 1
        if usage.source is UsageSource.ESTIMATED:
            stats["estimated"] += 1
        if not complete:
            stats["incomplete"] += 1


def _caller(proc: ProcessInfo | None) -> _Caller:
    """(pid, process, exe, container, unit, service) of the calling process, all None
    when unknown (a tuple: no dict to build and unpack into the event per call)."""
    if proc is None:
        return _NO_CALLER
    return (proc.pid, proc.comm or None, proc.exe, proc.container, proc.unit, proc.service)


def _billable(usage: Usage, status: int) -> Usage:
    """Errors bill nothing: for status >= 400 only reported usage is kept, never an estimate."""
    if status >= 400 and usage.source is not UsageSource.REPORTED:
        return _NO_USAGE
    return usage


def event_id(conn: ConnKey, stream: int, started_ns: int) -> str:
    """Deterministic event id: 16 hex characters of BLAKE2b over the exchange's identity.

    Args:
        conn: Connection of the exchange.
        stream: Stream id / sequence number of the exchange.
        started_ns: Request start, UNIX nanoseconds.

    Returns:
        The id; the same capture always gives the same ids.
    """
    text = f"{conn.source}/{conn.pid}/{conn.handle}/{stream}/{started_ns}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def iso_utc(ts_ns: int) -> str:
    """ISO 8601 UTC with microseconds and a Z, e.g. ``2026-11-23T13:46:05.123456Z``.

    Args:
        ts_ns: UNIX nanoseconds (negative values are clamped to the epoch).

    Returns:
        The timestamp text (integer arithmetic: no float rounding).
    """
    seconds, rest = divmod(max(ts_ns, 0), 1_000_000_000)
    return f"{_iso_seconds(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=1024)
def _iso_seconds(seconds: int) -> str:
    # Memoised: events arrive in time order, so the same second repeats.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _ms(delta_ns: int) -> float:
    return round(max(delta_ns, 0) / 1_000_000, 3)
