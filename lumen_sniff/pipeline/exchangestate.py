"""The state of one exchange while the assembler puts it together.

:mod:`lumen_sniff.pipeline.assembler` keeps one :class:`ExchangeState` per open exchange:
the request head, the request body kept for classification (up to the cap),
what the providers made of it, and the response's extractor.
"""

from __future__ import annotations

from lumen_sniff.model import RequestHead
from lumen_sniff.pipeline.routing import HostRouter
from lumen_sniff.providers.base import Classification, RequestInfo, UsageExtractor

__all__ = ["ExchangeState"]


class ExchangeState:
    """One request/response pair being assembled (mutable).

    Args:
        head: The request head that opened it.
    """

    __slots__ = (
        "body",
        "body_kept",
        "body_size",
        "classification",
        "classified",
        "extractor",
        "head",
        "last_ns",
        "request",
        "response_ts",
        "status",
    )

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.body: list[bytes] = []
        self.body_kept = 0
        self.body_size = 0
        self.classified = False
        self.classification: Classification | None = None
        self.request: RequestInfo | None = None
        self.extractor: UsageExtractor | None = None
        self.status = 0
        self.response_ts: int | None = None
        self.last_ns = head.ts_ns

    def request_info(self, router: HostRouter) -> RequestInfo:
        """The request as the providers see it: host, path and query split, body joined.

        Args:
            router: Knows the configured hosts (ports are dropped from hosts).

        Returns:
            The RequestInfo; ``body_truncated`` when the body was cut at the cap.
        """
        head = self.head
        path, _, query = head.target.partition("?")
        host = router.host_of(head.authority)
        if path.startswith(("http://", "https://")):  # absolute-form (via a proxy)
            _, _, rest = path.partition("://")
            authority, slash, path = rest.partition("/")
            path = slash + path
            host = host or router.host_of(authority.lower())
        body = self.body
        return RequestInfo(
            method=head.method,
            host=host,
            path=path or "/",
            query=query,
            headers=head.headers,
            body=body[0] if len(body) == 1 else b"".join(body),
            body_size=self.body_size,
            body_truncated=self.body_size > self.body_kept,
        )
