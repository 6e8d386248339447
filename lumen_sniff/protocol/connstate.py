"""What the connection tracker knows about one connection (see :mod:`.tracker`)."""

from __future__ import annotations

from collections.abc import Callable

from lumen_sniff.model import ConnKey, Direction, HttpEvent, ProcessInfo, Role
from lumen_sniff.protocol.connparser import ConnectionParser

__all__ = ["ConnState"]


class ConnState:
    """What the tracker knows about one connection."""

    __slots__ = (
        "expected",
        "feed",
        "key",
        "parser",
        "peer",
        "probe",
        "probing",
        "process",
        "request_dir",
        "roles",
        "server_side",
    )

    def __init__(
        self, key: ConnKey, process: ProcessInfo | None, peer: tuple[str, int] | None
    ) -> None:
        self.key = key  # the ConnKey every event of the connection carries
        self.expected: list[int | None] = [None, None]  # next offset, per Direction
        self.parser: ConnectionParser | None = None
        # parser.data once the parser is set and past probing: the fast path's test.
        self.feed: Callable[[Role, int, bytes], list[HttpEvent]] | None = None
        self.probing = False  # an Http1Parser that has not yet seen a head
        self.probe: list[tuple[Direction, int, bytes]] = []  # bytes held before classifying
        self.process = process
        self.peer = peer
        self.request_dir = Direction.EGRESS
        self.roles = (Role.REQUEST, Role.RESPONSE)  # Role of each Direction
        self.server_side = False
