"""The pipeline after the kernel's copy budget: a non-LLM request's body (or response
body) cut short, its later calls not copied at all (an offset jump), then an LLM call
on the same keep-alive connection: that call's usage is exact."""

from __future__ import annotations

import json

import pytest

from lumen_sniff.model import Chunk, ConnKey, Direction, UsageEvent
from lumen_sniff.pipeline import Pipeline, PipelineSettings

_CONN = ConnKey(source="bpf", pid=4242, handle=0xABC)
_BUDGET = 32 << 10
_WRITE = 16384


class _Kernel:
    """What ``emit_data`` makes of a direction's calls under a spent-or-not budget."""

    def __init__(self) -> None:
        self.offset = [0, 0]
        self.left = [_BUDGET, _BUDGET]
        self.budgeted = False
        self.chunks: list[Chunk] = []
        self.ts = 1_000

    def call(self, d: Direction, data: bytes, *, judge: bool | None = None) -> None:
        if judge is not None:  # a request line: False cannot be LLM, True may be
            if not judge and self.offset[0] == 0:
                self.budgeted = True
            elif judge:
                self.budgeted = False
        base, self.offset[d] = self.offset[d], self.offset[d] + len(data)
        self.ts += 1_000
        keep = len(data)
        if self.budgeted:
            keep = min(keep, self.left[d])
            self.left[d] -= keep
            if keep == 0:
                return  # no record: the next one's offset shows the gap
        self.chunks.append(
            Chunk(conn=_CONN, direction=d, offset=base, ts_ns=self.ts, data=data[:keep],
                  lost_bytes=len(data) - keep)
        )  # fmt: skip

    def send(self, d: Direction, head: bytes, body: bytes, *, judge: bool | None = None) -> None:
        self.call(d, head, judge=judge)
        for at in range(0, len(body), _WRITE):
            self.call(d, body[at : at + _WRITE])

    def close(self) -> None:
        self.ts += 1_000
        self.chunks.append(Chunk(conn=_CONN, direction=Direction.EGRESS, offset=self.offset[0],
                                 ts_ns=self.ts, data=b"", closed=True))  # fmt: skip


def _head(line: str, body: bytes, *fields: str) -> bytes:
    lines = [line, "Host: api.openai.com", *fields, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_REPLY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 51207, "completion_tokens": 12, "total_tokens": 51219},
    }
).encode()  # fmt: skip


@pytest.mark.parametrize("first", ["upload", "download"])
def test_llm_call_after_a_budget_gap_has_exact_usage(first: str) -> None:
    k = _Kernel()
    big = b"\0" * (1 << 20)
    if first == "upload":  # the request body is cut
        k.send(Direction.EGRESS, _head("PUT /bucket/backup-0001.tar HTTP/1.1", big), big,
               judge=False)  # fmt: skip
        k.send(Direction.INGRESS, _head("HTTP/1.1 404 Not Found", b"{}"), b"{}")
    else:  # the response body is cut
        k.send(Direction.EGRESS, _head("GET /files/backup-0001.tar HTTP/1.1", b""), b"",
               judge=False)  # fmt: skip
        k.send(Direction.INGRESS, _head("HTTP/1.1 200 OK", big), big)
    assert k.budgeted and min(k.left) == 0  # one direction's budget is spent
    body = json.dumps({"messages": [{"role": "user", "content": "x " * 150_000},],
                       "model": "gpt-4o-mini"}).encode()  # fmt: skip
    auth = "Authorization: Bearer sk-test-1"
    k.send(Direction.EGRESS, _head("POST /v1/chat/completions HTTP/1.1", body, auth), body,
           judge=True)  # fmt: skip
    k.send(Direction.INGRESS, _head("HTTP/1.1 200 OK", _REPLY,
                                    "Content-Type: application/json"), _REPLY)  # fmt: skip
    k.close()
    assert any(c.lost_bytes for c in k.chunks)  # the gap is there
    pipeline = Pipeline(PipelineSettings())
    outputs = [out for chunk in k.chunks for out in pipeline.feed(chunk)] + pipeline.close()
    events = [e for e in outputs if isinstance(e, UsageEvent)]
    assert len(events) == 1, outputs
    assert events[0].model == "gpt-4o-mini" and events[0].complete
    assert (events[0].input_tokens, events[0].output_tokens) == (51207, 12)
