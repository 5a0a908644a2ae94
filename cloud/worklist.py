"""The garments waiting for classification, live ones first.

A garment whose deadline is still ahead can still change what the line does with it; one past its deadline
(or sent without one) has had its fail-safe command already and only its audit trail and review wait on the
verdict. After an outage the backlog can be long, so live garments go first, earliest deadline first, and
the backlog drains behind them in the order garments joined it. A live garment whose deadline passes while
it waits joins the backlog when a worker next looks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from datetime import datetime

from cloud.records import GarmentRecord
from seamline.clock import utcnow


class LiveFirstQueue:
    """An asyncio work queue of garments: ``put``, ``await get()``, ``task_done``, ``await join()``."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self._now = now
        self._live: list[tuple[datetime, int, GarmentRecord]] = []  # heap by deadline
        self._backlog: deque[GarmentRecord] = deque()
        self._order = itertools.count()
        self._ready = asyncio.Condition()
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def qsize(self) -> int:
        return len(self._live) + len(self._backlog)

    def put_nowait(self, record: GarmentRecord) -> None:
        """Queue a garment (from the event loop's thread)."""
        if record.deadline_at is not None and record.deadline_at > self._now():
            heapq.heappush(self._live, (record.deadline_at, next(self._order), record))
        else:
            self._backlog.append(record)
        self._unfinished += 1
        self._idle.clear()
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._ready:
            self._ready.notify()

    async def get(self) -> GarmentRecord:
        """The next garment: the live one with the earliest deadline, else the backlog's first."""
        async with self._ready:
            await self._ready.wait_for(self.qsize)
            now = self._now()
            while self._live and self._live[0][0] <= now:  # its deadline passed while it waited
                self._backlog.append(heapq.heappop(self._live)[2])
            if self._live:
                return heapq.heappop(self._live)[2]
            return self._backlog.popleft()

    def task_done(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0:
            self._unfinished = 0
            self._idle.set()

    async def join(self) -> None:
        """Wait until every queued garment has been taken and marked done."""
        await self._idle.wait()
