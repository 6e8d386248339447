"""A webhook receiver on 127.0.0.1: records every POST (path, headers, JSON body)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """Answers 200 to every POST and keeps what it got; ``fail_first`` answers 500 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._fail = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    if receiver._fail > 0:
                        receiver._fail -= 1
                        code = 500
                    else:
                        code = 200
                        receiver.posts.append(
                            (
                                self.path,
                                {k.lower(): v for k, v in self.headers.items()},
                                json.loads(body),
                            )
                        )
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, path: str) -> list[Any]:
        """JSON bodies received on ``path``."""
        with self._lock:
            return [b for p, _, b in self.posts if p == path]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
