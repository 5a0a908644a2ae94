"""Video files, RTSP streams and GStreamer pipelines through OpenCV, one URL per camera.

A garment is triggered every ``trigger_every_frames`` frames (a stand-in for the line's photo-eye until the
trigger input arrives over the PLC link); at the trigger, the latest frame of every camera becomes one view.
A dropped stream is reopened with backoff; a finished file ends the source.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

import cv2
from pydantic import Field

from edge.sources.base import CapturedGarment, GarmentSource, ItemIds, SourceState
from seamline.clock import utcnow
from seamline.config.base import StrictModel

logger = logging.getLogger(__name__)


class VideoSourceConfig(StrictModel):
    """Cameras read with OpenCV: file paths, rtsp:// URLs or GStreamer pipelines."""

    type: Literal["video"] = Field(default="video", title="Source", description="video")
    urls: list[str] = Field(
        min_length=1,
        max_length=4,
        title="Camera URLs",
        description="One per view: a file, rtsp://... or a GStreamer pipeline ending in appsink.",
    )
    gstreamer: bool = Field(
        default=False,
        title="GStreamer",
        description="Open the URLs as GStreamer pipelines (Jetson CSI/RTSP with hardware decode).",
    )
    trigger_every_frames: int = Field(
        default=15,
        ge=1,
        title="Trigger every N frames",
        description="One garment every N frames of the first camera.",
    )
    reconnect_backoff_s: float = Field(
        default=1.0,
        gt=0,
        title="Reconnect backoff (s)",
        description="Wait before reopening a dropped stream (doubles up to 30 s).",
    )
    max_reconnects: int = Field(
        default=0,
        ge=0,
        title="Max reconnects",
        description="Give up after this many reopen attempts in a row; 0 = never.",
    )


class VideoSource(GarmentSource):
    kind = "video"

    def __init__(self, config: VideoSourceConfig, item_ids: ItemIds) -> None:
        super().__init__(item_ids)
        self.config = config
        self.live = (
            any(u.startswith(("rtsp://", "rtsps://", "http://", "https://")) for u in config.urls)
            or config.gstreamer
        )

    def _open(self) -> list[Any]:
        api = cv2.CAP_GSTREAMER if self.config.gstreamer else cv2.CAP_ANY
        captures = [cv2.VideoCapture(url, api) for url in self.config.urls]
        for url, cap in zip(self.config.urls, captures):
            if not cap.isOpened():
                for c in captures:
                    c.release()
                raise OSError(f"cannot open camera {url}")
        return captures

    def _produce(self) -> Iterator[CapturedGarment]:
        backoff, failures, frame_no = self.config.reconnect_backoff_s, 0, 0
        while not self._stop.is_set():
            try:
                captures = self._open()
            except OSError as exc:
                if not self.live:
                    raise
                failures += 1
                if self.config.max_reconnects and failures > self.config.max_reconnects:
                    raise
                logger.warning("%s; retrying in %.1f s", exc, backoff)
                if self.state is SourceState.RUNNING:
                    self._move(SourceState.RECONNECTING)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if self.state is SourceState.RECONNECTING:
                self._move(SourceState.RUNNING)
            backoff, failures = self.config.reconnect_backoff_s, 0
            try:
                while not self._stop.is_set():
                    frames = []
                    for cap in captures:
                        ok, frame = cap.read()
                        if not ok or frame is None:
                            frames = None
                            break
                        frames.append(frame)
                    if frames is None:
                        break  # end of file, or the stream dropped
                    frame_no += 1
                    if frame_no % self.config.trigger_every_frames:
                        continue
                    yield CapturedGarment(
                        item_id=self.item_ids.next(),
                        views=tuple(cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames),
                        camera_ids=tuple(f"cam{i}" for i in range(len(frames))),
                        captured_at=utcnow(),
                        source_ref=f"frame {frame_no}",
                    )
            finally:
                for cap in captures:
                    cap.release()
            if not self.live:
                return
            logger.warning("camera stream ended; reopening")
            self._move(SourceState.RECONNECTING)
