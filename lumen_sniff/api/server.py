"""The uvicorn server the daemon runs its API in, quiet and signal-free.

The daemon owns SIGTERM and the event loop, so the server must neither install
signal handlers nor wake ten times a second when nobody calls (issue 12: an idle
daemon does no periodic work).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["QuietServer", "quiet_server"]


def quiet_server(app: Any, host: str, port: int) -> QuietServer:
    """A :class:`QuietServer` for ``app`` on ``host:port``: no access log, no lifespan."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",  # no websocket routes; importing websockets only warns
    )
    return QuietServer(config)


class QuietServer(uvicorn.Server):
    """uvicorn.Server without its own signal handling (the daemon owns SIGTERM)
    and without its 10 Hz tick: it wakes once a second for the Date header, or
    at once when told to exit."""

    _exit_event: asyncio.Event | None = None

    def exit(self) -> None:
        self.should_exit = True
        if self._exit_event is not None:
            self._exit_event.set()

    async def main_loop(self) -> None:
        self._exit_event = asyncio.Event()
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_event.wait(), 1.0)
            # on_tick(0) refreshes the Date header and checks uvicorn's own limits.
            if await self.on_tick(0):
                return

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: Any = None) -> None:
        # uvicorn answers a failed bind with sys.exit(1), which would escape the
        # event loop; end serve() instead and let the daemon report it.
        try:
            await super().startup(sockets)
        except SystemExit:
            self.should_exit = True
