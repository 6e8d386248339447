"""The ring walker over a synthetic ring image laid out as the kernel maps it."""

from __future__ import annotations

import asyncio
import mmap
import os
import queue

import pytest

from lumen_sniff.capture.bpf.loader import BpfCapture
from lumen_sniff.capture.bpf.ringrecords import (
    HEADER_SIZE,
    Kind,
    RecordHeader,
    decode_fields,
    decode_fields_at,
)
from lumen_sniff.capture.bpf.runtime.ringwalk import MappedRing, Spans
from lumen_sniff.capture.bpf.settings import BpfSettings
from lumen_sniff.doorbell import BellQueue, Doorbell, put_all
from lumen_sniff.model import Chunk
from tests.support.ringimage import RingImage


def _payloads(ring: MappedRing, spans: Spans) -> list[bytes]:
    return [ring.buf[at : at + size] for at, size in spans]


def _read_all(ring: MappedRing) -> list[bytes]:
    got: list[bytes] = []
    ring.consume(lambda buf, spans: got.extend(buf[a : a + n] for a, n in spans))
    return got


def test_an_empty_ring_walks_nothing() -> None:
    image = RingImage(4096)
    ring = image.ring()
    assert ring.walk() == ([], 0, 0)
    assert ring.consume(lambda buf, spans: pytest.fail("no records")) == 0
    assert ring.fill() == {"bytes": 0, "size": 4096}


def test_records_of_every_length_come_back_whole_and_8_byte_aligned() -> None:
    image = RingImage(8192)
    payloads = [bytes([n]) * n for n in range(1, 20)]
    for payload in payloads:
        image.write(payload)
    ring = image.ring()
    spans, position, walked = ring.walk()
    assert _payloads(ring, spans) == payloads
    assert walked == len(payloads)
    assert all((at - 8) % 8 == 0 for at, _ in spans)  # headers on 8-byte boundaries
    assert position == image.producer == sum((n + 8 + 7) // 8 * 8 for n in range(1, 20))
    assert image.consumer == 0  # nothing given back until commit
    ring.commit(position)
    assert image.consumer == position
    assert ring.fill()["bytes"] == 0


def test_discarded_records_are_skipped_but_their_space_is_given_back() -> None:
    image = RingImage(4096)
    image.write(b"keep-1")
    image.write(b"dropped", discard=True)
    image.write(b"keep-2")
    ring = image.ring()
    assert _read_all(ring) == [b"keep-1", b"keep-2"]
    assert image.consumer == image.producer


def test_a_busy_record_stops_the_walk_until_it_is_committed() -> None:
    image = RingImage(4096)
    image.write(b"first")
    busy = image.write(b"reserved", busy=True)
    image.write(b"after")  # committed, but behind the busy one
    ring = image.ring()
    assert _read_all(ring) == [b"first"]
    assert image.consumer == busy
    assert ring.fill()["bytes"] > 0
    image.commit(busy)
    assert _read_all(ring) == [b"reserved", b"after"]
    assert image.consumer == image.producer


def test_a_busy_record_committed_as_discarded_is_skipped() -> None:
    image = RingImage(4096)
    busy = image.write(b"reserved", busy=True)
    image.write(b"next")
    ring = image.ring()
    assert _read_all(ring) == []
    image.commit(busy, discard=True)
    assert _read_all(ring) == [b"next"]


def test_a_record_across_the_end_of_the_area_reads_contiguously() -> None:
    image = RingImage(4096)
    image.set_positions(4096 * 5 - 24)  # positions far past the size: masked
    payloads = [os.urandom(100), os.urandom(3000), os.urandom(7)]
    for payload in payloads:
        image.write(payload)
    ring = image.ring()
    spans, _, _ = ring.walk()
    assert spans[0][0] + spans[0][1] > mmap.PAGESIZE + 4096  # it runs into the second copy
    assert _read_all(ring) == payloads
    assert image.consumer == image.producer == 4096 * 5 - 24 + 112 + 3008 + 16


def test_many_laps_of_the_ring_lose_nothing() -> None:
    image = RingImage(4096)
    ring = image.ring()
    sent: list[bytes] = []
    got: list[bytes] = []
    for n in range(2000):
        payload = os.urandom(n % 500)
        image.write(payload)
        sent.append(payload)
        if n % 7 == 0:
            got.extend(_read_all(ring))
    got.extend(_read_all(ring))
    assert got == sent
    assert image.producer > 50 * 4096


def test_a_long_backlog_is_handed_over_in_batches_each_committed() -> None:
    image = RingImage(1 << 16)
    for n in range(2500):
        image.write(n.to_bytes(4, "little"))
    ring = image.ring()
    batches: list[tuple[int, int]] = []

    def handler(buf: mmap.mmap, spans: Spans) -> None:
        batches.append((len(spans), image.consumer))

    assert ring.consume(handler) == 2500
    assert [n for n, _ in batches] == [1024, 1024, 452]
    assert [c for _, c in batches] == [0, 1024 * 16, 2048 * 16]  # committed between batches


def test_a_failing_handler_still_gives_the_space_back() -> None:
    image = RingImage(4096)
    image.write(b"poison")
    ring = image.ring()

    def handler(buf: mmap.mmap, spans: Spans) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        ring.consume(handler)
    assert image.consumer == image.producer


def test_close_unmaps() -> None:
    image = RingImage(4096)
    ring = image.ring()
    ring.close()
    assert image.data.closed and image.consumer_page.closed


def test_a_size_that_is_not_a_power_of_two_is_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        MappedRing(mmap.mmap(-1, 4096), mmap.mmap(-1, 4096 * 4), 3000, "x")


def _record(kind: Kind, data: bytes, *, offset: int = 0, ssl: int = 0x1000) -> bytes:
    head = RecordHeader(ts_ns=5, ssl=ssl, offset=offset, cgroup_id=1, pid=os.getpid(),
                        tid=os.getpid(), data_len=len(data), kind=kind, direction=0,
                        comm=b"pytest")
    return bytes(head) + data


def test_decoding_from_the_mapping_equals_decoding_bytes() -> None:
    image = RingImage(4096)
    raw = _record(Kind.DATA, b"POST /v1/chat/completions HTTP/1.1\r\n")
    image.write(raw)
    ring = image.ring()
    (at, size), = ring.walk()[0]
    from_map = decode_fields_at(ring.buf, at, size)
    assert from_map == decode_fields(raw)
    assert from_map is not None and type(from_map[-1]) is bytes  # copied out of the ring
    assert decode_fields_at(ring.buf, at, HEADER_SIZE - 1) is None


def test_the_capture_hands_a_batch_over_in_record_order_with_one_put() -> None:
    loop = asyncio.new_event_loop()
    try:
        capture = BpfCapture(BpfSettings())
        q: BellQueue[Chunk] = BellQueue(3, Doorbell(loop))
        capture.chunks = q
        image = RingImage(1 << 14)
        for n in range(5):
            image.write(_record(Kind.DATA, b"x" * 10, offset=10 * n))
        image.ring().consume(capture._on_records)
        assert [c.offset for c in q.drain(10)] == [0, 10, 20]
        status = capture._counters
        assert (status["chunks"], status["queue_full"], capture._queue_full_bytes) == (3, 2, 20)
    finally:
        loop.close()


def test_put_all_fills_a_plain_queue_until_full() -> None:
    q: queue.Queue[int] = queue.Queue(2)
    assert put_all(q, [1, 2, 3]) == 2
    assert put_all(q, [4]) == 0
    assert [q.get_nowait(), q.get_nowait()] == [1, 2]
