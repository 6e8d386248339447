"""The pump's doorbell: one wake-up per burst, none lost to a racing put."""

from __future__ import annotations

import asyncio
import queue
import threading

from lumen_sniff.doorbell import BellQueue, Doorbell


def test_a_burst_from_a_thread_wakes_the_waiter_and_every_item_is_there() -> None:
    async def run() -> list[int]:
        bell = Doorbell(asyncio.get_running_loop())
        q: BellQueue[int] = BellQueue(0, bell)
        thread = threading.Thread(target=lambda: [q.put_nowait(i) for i in range(1000)])
        thread.start()
        got: list[int] = []
        while len(got) < 1000:
            await asyncio.wait_for(bell.wait(), 10)
            while not q.empty():
                got.append(q.get_nowait())
        thread.join()
        return got

    assert asyncio.run(run()) == list(range(1000))


def test_a_put_after_the_wake_rings_again() -> None:
    async def run() -> bool:
        bell = Doorbell(asyncio.get_running_loop())
        q: BellQueue[int] = BellQueue(0, bell)
        q.put_nowait(1)
        await bell.wait()
        q.get_nowait()
        q.put_nowait(2)
        await asyncio.wait_for(bell.wait(), 10)
        return q.get_nowait() == 2

    assert asyncio.run(run())


def test_drain_takes_a_batch_in_order_and_frees_room_for_puts() -> None:
    async def run() -> None:
        bell = Doorbell(asyncio.get_running_loop())
        q: BellQueue[int] = BellQueue(3, bell)
        for i in range(3):
            q.put_nowait(i)
        try:
            q.put_nowait(3)
        except queue.Full:
            pass
        else:
            raise AssertionError("a full BellQueue took an item")
        assert q.drain(2) == [0, 1]
        q.put_nowait(3)
        assert q.drain(10) == [2, 3]
        assert q.drain(10) == []
        # A getter blocked on the queue itself is still woken by a put.
        got: list[int] = []
        reader = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
        reader.start()
        q.put_nowait(7)
        reader.join()
        assert got == [7]

    asyncio.run(run())
