"""A minimal OTLP/HTTP receiver for tests, built on the official opentelemetry-proto classes.

It accepts ``POST /v1/metrics`` and ``POST /v1/logs`` (binary protobuf),
decodes them as ``ExportMetricsServiceRequest`` / ``ExportLogsServiceRequest``
and keeps them. Helpers flatten what arrived into plain dicts so tests can
compare names, units, attributes and values with the events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["GrpcOtlpReceiver", "OtlpReceiver", "attrs_of"]


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs_of(kvs: Any) -> dict[str, Any]:
    """KeyValue list → dict."""
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


class _Received:
    """What a receiver got, and helpers to read it."""

    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.logs: list[ExportLogsServiceRequest] = []
        self._lock = threading.Lock()

    def log_records(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, LogRecord) of every record received."""
        with self._lock:
            requests = list(self.logs)
        for req in requests:
            for rl in req.resource_logs:
                resource = attrs_of(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        yield resource, record

    def latest_metrics(self) -> dict[str, Any]:
        """Name → Metric, from the last metrics request (cumulative: the latest is the total)."""
        with self._lock:
            if not self.metrics:
                return {}
            req = self.metrics[-1]
        return {
            m.name: m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }


class GrpcOtlpReceiver(_Received):
    """OTLP/gRPC on 127.0.0.1, an ephemeral port (the official service stubs)."""

    def __init__(self) -> None:
        super().__init__()
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as logs_grpc
        from opentelemetry.proto.collector.metrics.v1 import (
            metrics_service_pb2_grpc as metrics_grpc,
        )

        received = self

        class Logs(logs_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with received._lock:
                    received.logs.append(request)
                return ExportLogsServiceResponse()

        class Metrics(metrics_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with received._lock:
                    received.metrics.append(request)
                return ExportMetricsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        logs_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        metrics_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop(grace=None).wait()


class OtlpReceiver(_Received):
    """OTLP/HTTP on 127.0.0.1, on ``port`` (0: an ephemeral one), in a thread."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/metrics":
                    req: Any = ExportMetricsServiceRequest.FromString(body)
                    reply: Any = ExportMetricsServiceResponse()
                    with receiver._lock:
                        receiver.metrics.append(req)
                elif self.path == "/v1/logs":
                    req = ExportLogsServiceRequest.FromString(body)
                    reply = ExportLogsServiceResponse()
                    with receiver._lock:
                        receiver.logs.append(req)
                else:
                    self.send_error(404)
                    return
                data = reply.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the port is closed: exporters see connection refused)."""
        self._server.shutdown()
        self._server.server_close()
