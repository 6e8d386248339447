"""HTTP/2 side of the stand-in: ``h2``'s server state machine over a recorded wire.

Strategy: the stand-in is an endpoint, so unlike the sniffer it may use h2's
connection state machine. Our SETTINGS go out once the client preface has
arrived; each stream's request is answered by a task when its END_STREAM
arrives, body parts become DATA frames cut to the peer's window and frame size,
and a stream waits for WINDOW_UPDATE when the window is spent.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tests.support.standin_routes import answer
from tests.support.standin_wire import StandinRequest

__all__ = ["Wire", "serve_h2"]

_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade",
                  "proxy-connection"})


class Wire(Protocol):
    """A connection's byte streams (the stand-in's recorded wire)."""

    async def read(self) -> bytes:
        """Next bytes from the client; b"" at end of stream."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the client."""


class _H2Session:
    """h2's server state machine bound to one recorded connection."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.window_open = asyncio.Event()
        self.heads: dict[int, list[tuple[bytes, bytes]]] = {}
        self.bodies: dict[int, bytearray] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def flush(self) -> None:
        await self.wire.write(self.conn.data_to_send())

    async def run(self) -> None:
        started = False
        while True:
            data = await self.wire.read()
            if not data:
                break
            if not started:
                # Our SETTINGS go out once the client's preface is in, so the byte
                # order matches what the client process itself sees (write, then read).
                self.conn.initiate_connection()
                started = True
            for event in self.conn.receive_data(data):
                self._on_event(event)
            await self.flush()
        for task in self.tasks:
            task.cancel()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.heads[event.stream_id] = [(bytes(k), bytes(v)) for k, v in event.headers or []]
            self.bodies[event.stream_id] = bytearray()
        elif isinstance(event, h2.events.DataReceived):
            self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data or b"")
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            task = asyncio.ensure_future(self._respond(event.stream_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window_open.set()

    async def _respond(self, sid: int) -> None:
        raw = self.heads.pop(sid, [])
        pseudo = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k.startswith(b":")}
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1"))
                        for k, v in raw if not k.startswith(b":"))
        req = StandinRequest(method=pseudo.get(":method", "GET"), target=pseudo.get(":path", "/"),
                             headers=headers, body=bytes(self.bodies.pop(sid, b"")),
                             http_version="2")
        reply = answer(req)
        out = [(":status", str(reply.status))]
        out += [(n.lower(), v) for n, v in reply.headers if n.lower() not in _HOP]
        try:
            self.conn.send_headers(sid, out)
            await self.flush()
            for i, part in enumerate(p for p in reply.parts if p):
                if reply.stream and i and reply.gap_s:
                    await asyncio.sleep(reply.gap_s)
                await self._send(sid, part)
            self.conn.end_stream(sid)
            await self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, ConnectionError):
            return

    async def _send(self, sid: int, data: bytes) -> None:
        while data:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.window_open.clear()
                await self.window_open.wait()
                continue
            self.conn.send_data(sid, data[:window])
            data = data[window:]
            await self.flush()


async def serve_h2(wire: Wire) -> None:
    """Serve one HTTP/2 connection until the client closes it."""
    await _H2Session(wire).run()
