"""Camera sources: what they yield, the states they go through, the buffer between them and the detector."""

from __future__ import annotations

import itertools
import logging
import queue
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import numpy as np

from seamline.errors import SeamlineError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedGarment:
    """The views of one garment taken at one trigger."""

    item_id: str
    views: tuple[np.ndarray, ...]  # each (H, W, 3) uint8 RGB, 1 to 4 views
    camera_ids: tuple[str, ...]
    captured_at: datetime  # UTC, at the trigger
    source_ref: str  # where it came from: file names, a frame number, a synthetic item id


class SourceState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    RECONNECTING = "reconnecting"  # a stream dropped; retrying
    ENDED = "ended"  # finite input exhausted
    STOPPED = "stopped"  # asked to stop
    FAILED = "failed"  # cannot go on


_TRANSITIONS: dict[SourceState, set[SourceState]] = {
    SourceState.CREATED: {SourceState.RUNNING, SourceState.STOPPED, SourceState.FAILED},
    SourceState.RUNNING: {
        SourceState.RECONNECTING,
        SourceState.ENDED,
        SourceState.STOPPED,
        SourceState.FAILED,
    },
    SourceState.RECONNECTING: {SourceState.RUNNING, SourceState.STOPPED, SourceState.FAILED},
    SourceState.ENDED: set(),
    SourceState.STOPPED: set(),
    SourceState.FAILED: set(),
}


class CameraState(str, Enum):
    """One camera of a live source, as ``edge/status`` and the metrics report it."""

    CONNECTING = "connecting"  # being opened (at start, or again with the others after one of them dropped)
    RUNNING = "running"  # open and delivering frames
    RECONNECTING = "reconnecting"  # could not be opened, or its stream dropped or stalled: retrying
    FAILED = "failed"  # gave up after the configured attempts
    CLOSED = "closed"  # the source ended or was stopped


@dataclass(frozen=True)
class CameraStatus:
    """What a source knows about one of its cameras; replaced, never changed, so any thread may read it."""

    camera_id: str  # cam0, cam1, ...: the camera ids on the garments' views
    url: str  # credentials masked
    state: CameraState
    failures: int = 0  # failed opens / drops in a row; back to 0 once it delivers a frame
    reconnects: int = 0  # reopen attempts since the source started
    last_error: str | None = None


class CameraUnavailable(SeamlineError, OSError):
    """A camera cannot be opened (a file), or gave up after its reconnect attempts (a live stream).

    The agent stops and exits 1, so that a supervisor (systemd's ``Restart=on-failure``) restarts it.
    """


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.IGNORECASE)


def mask_credentials(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (also inside a GStreamer pipeline)."""
    return _CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", url)


class ItemIds:
    """Unique, sortable garment ids: ``<line>-<station>-<utc ms>-<boot tag><seq>``, unique across restarts."""

    def __init__(self, line_id: str, station_id: str) -> None:
        self.prefix = f"{line_id}-{station_id}"
        self.boot = secrets.token_hex(2)
        self._seq = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}-{int(time.time() * 1000):013d}-{self.boot}{next(self._seq):06d}"


class GarmentSource(ABC):
    """A source of garments; iterate ``garments()`` from one thread, call ``stop()`` from any."""

    kind = ""

    def __init__(self, item_ids: ItemIds) -> None:
        self.item_ids = item_ids
        self.state = SourceState.CREATED
        self.skipped = 0  # unreadable frames / files
        self._stop = threading.Event()
        self._listeners: list[Callable[[], None]] = []

    def _move(self, new: SourceState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"source cannot go from {self.state.value} to {new.value}")
        logger.info("%s source: %s -> %s", self.kind, self.state.value, new.value)
        self.state = new
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after the source's or a camera's state changes (on the source's thread)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a broken listener must not stop the camera
                logger.exception("%s source: a state listener failed", self.kind)

    def cameras(self) -> tuple[CameraStatus, ...]:
        """The live cameras behind this source and their states; none for files and the synthetic line."""
        return ()

    @property
    def delivering(self) -> bool:
        """Garments can come: the source runs and every camera it needs is open."""
        return self.state is SourceState.RUNNING and all(
            c.state is CameraState.RUNNING for c in self.cameras()
        )

    def stop(self) -> None:
        self._stop.set()

    def garments(self) -> Iterator[CapturedGarment]:
        """Yield garments until the input ends, ``stop()`` is called, or the source fails."""
        self._move(SourceState.RUNNING)
        try:
            for garment in self._produce():
                if self._stop.is_set():
                    break
                yield garment
        except Exception:
            logger.exception("%s source failed", self.kind)
            self._move(SourceState.FAILED)
            raise
        self._move(SourceState.STOPPED if self._stop.is_set() else SourceState.ENDED)

    @abstractmethod
    def _produce(self) -> Iterator[CapturedGarment]:
        """The source's own loop; check ``self._stop`` between garments."""


class DropStrategy(str, Enum):
    """What happens when the detector falls behind the camera."""

    # Keep the newest garments: the oldest waiting one is dropped (and goes to review by its deadline: it was
    # tracked at capture, so line control still commands it fail-safe).
    DROP_OLDEST = "drop_oldest"
    # The source waits: right for files and the synthetic line, wrong for a live camera.
    BLOCK = "block"


class GarmentBuffer:
    """A bounded hand-over between the source thread and the detection loop."""

    def __init__(self, capacity: int, strategy: DropStrategy) -> None:
        self._queue: queue.Queue[CapturedGarment | None] = queue.Queue(maxsize=capacity)
        self.strategy = DropStrategy(strategy)

    def put(self, garment: CapturedGarment | None) -> CapturedGarment | None:
        """Hand over a garment (``None`` marks the end); returns the garment dropped to make room, if any."""
        if self.strategy is DropStrategy.BLOCK or garment is None:
            self._queue.put(garment)
            return None
        dropped: CapturedGarment | None = None
        while True:
            try:
                self._queue.put_nowait(garment)
                return dropped
            except queue.Full:
                try:
                    old = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if old is None:  # the producer already said it was done
                    self._queue.put(old)
                    raise RuntimeError("garment put after the end marker") from None
                dropped = old

    def get(self, timeout: float | None = None) -> CapturedGarment | None:
        return self._queue.get(timeout=timeout)

    def qsize(self) -> int:
        return self._queue.qsize()
