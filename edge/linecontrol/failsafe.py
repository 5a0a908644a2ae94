"""The fail-safe timer: each garment's divert fires at its deadline, from a thread that does nothing else.

Why a thread of its own, driven by a heap: the command must leave at ``deadline_at`` (the moment the PLC needs
it, the actuation margin already taken off) however busy the agent is. A check made between detections is
late by up to a whole detection; a ticker that polls the ledger and sleeps in slices pays SQLite queries and
GIL hand-offs before it even learns what is due. This thread knows every armed deadline in memory, sleeps on a
``Condition`` until exactly the earliest one (woken early only when an earlier one is armed), and on waking
calls ``fire`` for what is due and nothing else: no queue shared with detection, no polling.

Under CPU saturation a thread that wakes still queues behind every busy process for a core, so the timer asks
for the lowest real-time priority (SCHED_FIFO 1) where it is allowed (Linux with CAP_SYS_NICE: root, or
``AmbientCapabilities=CAP_SYS_NICE`` in the systemd unit); elsewhere it runs at normal priority. That is safe
because the thread sleeps except while it fires. It still needs the GIL and the ledger's lock like every other
thread, so a thread holding either and descheduled delays it: ``bench/failsafe_lateness.py`` measures what is
left.

Deadlines are given in wall-clock seconds (they are stored and survive restarts) and converted to the
monotonic clock when armed: the garment reaches the diverter after a stretch of belt *time*, so a wall-clock
step (NTP) after arming neither advances nor delays its fail-safe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

RETRY_S = 0.1  # a fire that raised (the ledger's disk, say) is tried again this much later


class FailSafeTimer:
    """Calls ``fire(item_id)`` once at each armed garment's deadline, unless it was cancelled before.

    Args:
        fire: what to do when a deadline passes (the line controller's ``fail_safe``); it runs on the timer
            thread, so it must not block for long. Exactly-once is the ledger's job, not the timer's: a fire
            for a garment that was decided meanwhile is a harmless no-op.
        clock: wall-clock seconds, the clock deadlines are expressed in.
        monotonic: the clock the timer sleeps on.
        realtime: ask for real-time scheduling of the timer thread (best effort; see the module docstring).
    """

    def __init__(
        self,
        fire: Callable[[str], object],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        realtime: bool = True,
    ) -> None:
        self._fire = fire
        self.realtime = realtime
        self.realtime_granted = False  # whether the OS gave the running thread real-time priority
        self._clock = clock
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []  # (monotonic fire time, arm order, item id)
        self._armed: dict[str, float] = {}  # item id -> its current fire time; what is not here is stale
        self._order = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def arm(self, item_id: str, deadline_at: float) -> None:
        """Fire for ``item_id`` at ``deadline_at`` (wall-clock seconds; in the past: at once)."""
        wall = self._clock()  # read before the monotonic clock, so the gap between the reads errs late
        self._schedule(item_id, self._monotonic() + (deadline_at - wall))

    def _schedule(self, item_id: str, fire_at: float) -> None:
        with self._cond:
            self._armed[item_id] = fire_at
            heapq.heappush(self._heap, (fire_at, next(self._order), item_id))
            if self._heap[0][2] == item_id:
                self._cond.notify()  # the new earliest deadline: the thread sleeps until a later one

    def cancel(self, item_id: str) -> None:
        """The garment has its command: do not fire for it (its heap entry is dropped when it comes up)."""
        with self._cond:
            self._armed.pop(item_id, None)

    def __len__(self) -> int:
        """Garments armed and not yet fired or cancelled."""
        with self._cond:
            return len(self._armed)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fail-safe", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _due(self) -> list[str] | None:
        """Sleep until something is due; the due item ids, earliest first (None once stopping)."""
        with self._cond:
            while not self._stopping:
                while self._heap and self._armed.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # cancelled, fired, or re-armed under a new time
                now = self._monotonic()
                if self._heap and self._heap[0][0] <= now:
                    due = []
                    while self._heap and self._heap[0][0] <= now:
                        fire_at, _, item_id = heapq.heappop(self._heap)
                        if self._armed.get(item_id) == fire_at:
                            del self._armed[item_id]
                            due.append(item_id)
                    return due
                self._cond.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        if self.realtime:
            self.realtime_granted = _ask_for_realtime_priority()
        while (due := self._due()) is not None:
            for item_id in due:  # outside the lock: arming and cancelling never wait for a command
                try:
                    self._fire(item_id)
                except Exception:  # one failed command must not stop the fail-safe of every other garment
                    logger.exception(
                        "fail-safe command failed; trying again in %.1f s",
                        RETRY_S,
                        extra={"item_id": item_id},
                    )
                    self._schedule(item_id, self._monotonic() + RETRY_S)


def _ask_for_realtime_priority() -> bool:
    """Run the calling thread under SCHED_FIFO at the lowest real-time priority, if the OS lets us."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_min(os.SCHED_FIFO)))
    except OSError as exc:  # EPERM without CAP_SYS_NICE
        logger.info("fail-safe timer at normal priority (real-time scheduling refused: %s)", exc.strerror)
        return False
    logger.info("fail-safe timer at real-time priority (SCHED_FIFO)")
    return True
