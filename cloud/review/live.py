"""Wake server-sent-event streams when the queue changes (a local action or a review event over MQTT)."""

from __future__ import annotations

import asyncio


class QueueWatch:
    """A change counter that SSE streams wait on; ``changed`` may be called from any thread."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def changed(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._bump)

    def close(self) -> None:
        """Wake every stream for the last time: the server is shutting down.

        May be called from any thread.
        """
        self.closed = True
        self.changed()

    def _bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> int:
        """Return the version once it differs from ``seen``, or after ``timeout`` seconds."""
        if self.version != seen:
            return self.version
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            pass
        return self.version
