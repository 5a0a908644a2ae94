"""The classification queue: live garments first, earliest deadline first; the backlog behind them."""

import asyncio
from datetime import UTC, datetime, timedelta

from cloud.records import GarmentRecord
from cloud.worklist import LiveFirstQueue

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _garment(item_id: str, deadline_in_s: float | None) -> GarmentRecord:
    deadline = None if deadline_in_s is None else T0 + timedelta(seconds=deadline_in_s)
    return GarmentRecord(item_id, "s", "l", "st", "a", T0, deadline, T0, "d", ((0, 8, 8),), ())


def test_live_garments_first_by_deadline_then_the_backlog_in_order():
    now = [T0]

    async def run():
        queue = LiveFirstQueue(now=lambda: now[0])
        arrivals = [("old1", -5), ("live-late", 9), ("none", None), ("live-soon", 2), ("old2", -1)]
        for item_id, deadline in arrivals:
            queue.put_nowait(_garment(item_id, deadline))
        first = [(await queue.get()).item_id for _ in range(2)]
        now[0] = T0 + timedelta(seconds=3)
        queue.put_nowait(_garment("live-new", 5))  # arrives while the backlog drains: goes ahead of it
        rest = [(await queue.get()).item_id for _ in range(4)]
        return first, rest

    first, rest = asyncio.run(run())
    assert first == ["live-soon", "live-late"]
    assert rest == ["live-new", "old1", "none", "old2"]


def test_a_live_garment_whose_deadline_passes_while_waiting_joins_the_backlog():
    now = [T0]

    async def run():
        queue = LiveFirstQueue(now=lambda: now[0])
        queue.put_nowait(_garment("backlog", -1))
        queue.put_nowait(_garment("expires", 1))
        queue.put_nowait(_garment("live", 10))
        now[0] = T0 + timedelta(seconds=2)
        return [(await queue.get()).item_id for _ in range(3)]

    assert asyncio.run(run()) == ["live", "backlog", "expires"]


def test_get_waits_for_work_and_join_waits_for_task_done():
    async def run():
        queue = LiveFirstQueue(now=lambda: T0)
        waiter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        queue.put_nowait(_garment("a", 1))
        got = await asyncio.wait_for(waiter, 1)
        joined = asyncio.create_task(queue.join())
        await asyncio.sleep(0.01)
        assert not joined.done()
        queue.task_done()
        await asyncio.wait_for(joined, 1)
        return got.item_id, queue.qsize()

    assert asyncio.run(run()) == ("a", 0)
