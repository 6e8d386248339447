"""A store + API app + uvicorn on a random loopback port, in a background event loop.

As in the daemon, the store and the app share one loop; tests talk to the
server with httpx (or a browser) over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from lumen_sniff.api import create_app
from lumen_sniff.model import UsageEvent
from lumen_sniff.store import Store, open_store

__all__ = ["TOKEN", "Served"]

TOKEN = "s3cret-token-for-tests"


class Served:
    """A store + app + uvicorn on a random loopback port, in a background loop."""

    def __init__(
        self,
        db: Path,
        *,
        token: str | None = None,
        status: Callable[[], Mapping[str, Any]] | None = None,
        **app_kwargs: Any,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.status_value: dict[str, Any] = {"ready": True, "dropped": {}}
        status_fn = status or (lambda: self.status_value)
        self.store: Store = self.call(open_store(db, retention_days=0))
        self.app = create_app(self.store, status=status_fn, token=token, **app_kwargs)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", ws="none"
        )
        self.server = uvicorn.Server(config)
        self._serving: Future[None] = asyncio.run_coroutine_threadsafe(
            self.server.serve(), self.loop
        )
        deadline = time.monotonic() + 10
        while not self.server.started:
            if self._serving.done():
                self._serving.result()
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def add(self, events: list[UsageEvent]) -> None:
        async def submit() -> None:
            for e in events:
                assert self.store.writer.submit(e)
            await self.store.writer.flush()

        self.call(submit())

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.http.close()
        self.call(self.store.close())
        self.server.should_exit = True
        self._serving.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
