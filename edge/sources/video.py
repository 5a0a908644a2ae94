"""Video files, live cameras (RTSP, HTTP MJPEG, V4L2) and GStreamer pipelines, read with OpenCV.

A garment is triggered every ``trigger_every_frames`` frames (a stand-in for the line's photo-eye until the
trigger input arrives over the PLC link); at the trigger, the latest frame of every camera becomes one view,
so a garment needs every camera: when one cannot be opened, or its stream drops or stalls, all are reopened
together, with backoff. After ``max_reconnects`` reopen attempts in a row without a frame the source gives
up (``CameraUnavailable``), and the agent stops so that its supervisor restarts it. A file that cannot be
opened fails at once; a finished file ends the source. Each camera's state is kept for ``edge/status`` and
the metrics (``cameras()``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import replace
from types import ModuleType
from typing import Any, Literal, NoReturn

import cv2
from pydantic import Field

from edge.sources.base import (
    CameraState,
    CameraStatus,
    CameraUnavailable,
    CapturedGarment,
    GarmentSource,
    ItemIds,
    SourceState,
    mask_credentials,
)
from seamline.clock import utcnow
from seamline.config.base import StrictModel
from seamline.errors import ConfigError

logger = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
MAX_BACKOFF_S = 30.0


class VideoSourceConfig(StrictModel):
    """Cameras read with OpenCV: file paths, rtsp:// or http:// URLs, /dev/videoN, or GStreamer pipelines."""

    type: Literal["video"] = Field(default="video", title="Source", description="video")
    urls: list[str] = Field(
        min_length=1,
        max_length=4,
        title="Camera URLs",
        description="One per view: a file, rtsp://..., http://... (MJPEG), /dev/videoN, or a GStreamer "
        "pipeline ending in appsink. Credentials in a URL are masked in logs, status and metrics.",
    )
    gstreamer: bool = Field(
        default=False,
        title="GStreamer",
        description="Open the URLs as GStreamer pipelines (Jetson CSI/RTSP with hardware decode). Needs an "
        "OpenCV built with GStreamer (JetPack's, not the opencv-python-headless wheel): the agent refuses to "
        "start otherwise, saying how to get one.",
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
        description="Wait before reopening a camera that could not be opened (doubles up to 30 s). A stream "
        "that drops after delivering frames is reopened at once.",
    )
    max_reconnects: int = Field(
        default=10,
        ge=0,
        title="Max reconnects",
        description="Reopen attempts in a row, without a frame in between, before a live camera gives up: "
        "the agent then reports the camera failed (edge/status, metrics), goes offline and exits 1, so its "
        "supervisor (systemd's Restart=on-failure) restarts it. The default 10 with a 1 s backoff is about "
        "3 minutes of retrying. 0 = retry for ever.",
    )
    open_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        title="Open timeout (s)",
        description="How long opening a network stream (rtsp://, http://) may take before the attempt fails.",
    )
    read_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        title="Read timeout (s)",
        description="A network stream that delivers no frame for this long has stalled: it is reopened.",
    )


def gstreamer_in_build(build_information: str) -> bool:
    """Whether ``cv2.getBuildInformation()`` text says the Video I/O section has GStreamer."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", build_information, re.MULTILINE)
    return bool(match) and match.group(1).upper() == "YES"


def require_gstreamer(opencv: ModuleType = cv2) -> None:
    """Raise ``ConfigError`` unless ``opencv`` can open GStreamer pipelines, saying how to get an OpenCV that
    can."""
    registry = getattr(opencv, "videoio_registry", None)
    if registry is not None and hasattr(registry, "hasBackend"):
        available = bool(registry.hasBackend(opencv.CAP_GSTREAMER))  # also sees a backend loaded as plugin
    else:
        available = gstreamer_in_build(opencv.getBuildInformation())
    if available:
        return
    raise ConfigError(
        f"edge.source.gstreamer is true, but the installed OpenCV {opencv.__version__} "
        f"({getattr(opencv, '__file__', '?')}) has no GStreamer (cv2.getBuildInformation(): "
        "'GStreamer: NO'); the pip wheels (opencv-python-headless, which Seamline declares) are never built "
        "with it. On a Jetson use JetPack's OpenCV, built with GStreamer: 'sudo apt install nvidia-opencv' "
        "(or Ubuntu's python3-opencv), then in the agent's environment 'pip uninstall -y "
        "opencv-python-headless' and make the system package visible (a venv created with "
        "--system-site-packages). Or set gstreamer: false to open rtsp:// URLs with OpenCV's FFmpeg."
    )


class VideoSource(GarmentSource):
    kind = "video"

    def __init__(self, config: VideoSourceConfig, item_ids: ItemIds) -> None:
        super().__init__(item_ids)
        if config.gstreamer:
            require_gstreamer()
        self.config = config
        self.live = config.gstreamer or any(
            u.startswith(NETWORK_SCHEMES) or u.startswith("/dev/video") for u in config.urls
        )
        self._frame_no = 0
        self._lock = threading.Lock()
        self._cameras = [
            CameraStatus(f"cam{i}", mask_credentials(url), CameraState.CONNECTING)
            for i, url in enumerate(config.urls)
        ]

    def cameras(self) -> tuple[CameraStatus, ...]:
        with self._lock:
            return tuple(self._cameras)

    def _update(self, changes: dict[int, dict[str, Any]]) -> None:
        """Replace the status of the cameras named by index, then tell the listeners once."""
        with self._lock:
            for index, fields in changes.items():
                self._cameras[index] = replace(self._cameras[index], **fields)
        self._changed()

    def _failed(self, problems: dict[int, str]) -> None:
        """The cameras in ``problems`` failed (index -> why); the others wait to be opened with them."""
        cameras = self.cameras()
        self._update(
            {
                i: (
                    {
                        "state": CameraState.RECONNECTING,
                        "failures": cameras[i].failures + 1,
                        "last_error": problems[i],
                    }
                    if i in problems
                    else {"state": CameraState.CONNECTING}
                )
                for i in range(len(cameras))
            }
        )

    def _capture(self, url: str) -> Any:
        if self.config.gstreamer:
            return cv2.VideoCapture(url, cv2.CAP_GSTREAMER)
        if url.startswith(NETWORK_SCHEMES):
            # FFmpeg's own defaults are 30 s each: a stalled camera would hold the line that long.
            return cv2.VideoCapture(
                url,
                cv2.CAP_ANY,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    int(self.config.open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    int(self.config.read_timeout_s * 1000),
                ],
            )
        return cv2.VideoCapture(url, cv2.CAP_ANY)

    def _open(self) -> list[Any] | None:
        """Every camera opened, or None (all released, the failing ones marked) if any cannot be."""
        captures: list[Any] = []
        problems: dict[int, str] = {}
        for index, url in enumerate(self.config.urls):
            try:
                capture = self._capture(url)
                opened = capture.isOpened()
            except cv2.error as exc:
                capture, opened = None, False
                problems[index] = f"OpenCV cannot open it: {exc}"
            if not opened and index not in problems:
                network = url.startswith(NETWORK_SCHEMES) and not self.config.gstreamer
                # OpenCV does not say why (refused, not found, timed out): FFmpeg's log on stderr does.
                problems[index] = "OpenCV cannot open it" + (
                    f" (refused, not found, or no answer within {self.config.open_timeout_s:g} s)"
                    if network
                    else ""
                )
            captures.append(capture)
        if not problems:
            return captures
        for capture in captures:
            if capture is not None:
                capture.release()
        self._failed(problems)
        return None

    def _describe(self, camera: CameraStatus) -> str:
        return f"camera {camera.camera_id} ({camera.url})"

    def _produce(self) -> Iterator[CapturedGarment]:
        config = self.config
        backoff = config.reconnect_backoff_s
        attempt = 0  # reopen attempts since the cameras last delivered a frame
        try:
            while not self._stop.is_set():
                if attempt:
                    self._update(
                        {
                            i: {"reconnects": c.reconnects + 1}
                            for i, c in enumerate(self.cameras())
                            if c.state is CameraState.RECONNECTING
                        }
                    )
                captures = self._open()
                delivered = False
                if captures is not None:
                    delivered = yield from self._stream(captures)
                    if delivered:
                        attempt, backoff = 0, config.reconnect_backoff_s
                if self._stop.is_set() or (delivered and not self.live):
                    return  # asked to stop, or the end of a file
                bad = [c for c in self.cameras() if c.state is CameraState.RECONNECTING]
                if not self.live:
                    self._give_up(bad, "cannot open {camera}: {why}")
                if config.max_reconnects and attempt >= config.max_reconnects:
                    self._give_up(bad, f"{{camera}} gave up after {attempt} reconnect attempt(s): {{why}}")
                if self.state is SourceState.RUNNING:
                    self._move(SourceState.RECONNECTING)
                wait = 0.0 if delivered else backoff  # a stream that dropped after frames: at once
                limit = f" of {config.max_reconnects}" if config.max_reconnects else ""
                for camera in bad:
                    logger.warning(
                        "%s: %s; reconnect %d%s in %.1f s",
                        self._describe(camera),
                        camera.last_error,
                        attempt + 1,
                        limit,
                        wait,
                    )
                if wait:
                    self._stop.wait(wait)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                attempt += 1
        finally:
            with self._lock:
                self._cameras = [
                    c if c.state is CameraState.FAILED else replace(c, state=CameraState.CLOSED)
                    for c in self._cameras
                ]
            self._changed()

    def _stream(self, captures: list[Any]) -> Generator[CapturedGarment, None, bool]:
        """Garments from open cameras until one drops (it is marked) or stop; returns whether a frame came."""
        delivered = False
        dropped = 0
        try:
            while not self._stop.is_set():
                frames = []
                for index, capture in enumerate(captures):
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        dropped = index
                        break
                    frames.append(frame)
                if len(frames) < len(captures):
                    break  # the end of a file, or a stream dropped or stalled
                if not delivered:
                    delivered = True
                    self._update(
                        {i: {"state": CameraState.RUNNING, "failures": 0} for i in range(len(frames))}
                    )
                    if self.state is SourceState.RECONNECTING:
                        self._move(SourceState.RUNNING)
                self._frame_no += 1
                if self._frame_no % self.config.trigger_every_frames:
                    continue
                yield CapturedGarment(
                    item_id=self.item_ids.next(),
                    views=tuple(cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames),
                    camera_ids=tuple(c.camera_id for c in self.cameras()),
                    captured_at=utcnow(),
                    source_ref=f"frame {self._frame_no}",
                )
        finally:
            for capture in captures:
                capture.release()
        if self._stop.is_set() or (delivered and not self.live):
            return delivered
        url = self.config.urls[dropped]
        network = url.startswith(NETWORK_SCHEMES) and not self.config.gstreamer
        why = (
            f"no frame within {self.config.read_timeout_s:g} s, or the stream ended"
            if network
            else "the stream ended or returned no frame"
        )
        self._failed({dropped: why if delivered else f"{why} (right after opening)"})
        return delivered

    def _give_up(self, bad: list[CameraStatus], message: str) -> NoReturn:
        """Mark the failing cameras failed and raise ``CameraUnavailable``: ``message`` for each of them, with
        ``{camera}`` and ``{why}`` filled in."""
        failed = {c.camera_id for c in bad}
        self._update(
            {i: {"state": CameraState.FAILED} for i, c in enumerate(self.cameras()) if c.camera_id in failed}
        )
        raise CameraUnavailable(
            "; ".join(message.format(camera=self._describe(c), why=c.last_error) for c in bad)
        )
