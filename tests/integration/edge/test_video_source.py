"""The video source against a real camera: an MJPEG stream over HTTP (tests/integration/edge/mjpeg_server.py),
read by OpenCV's FFmpeg backend as an IP camera would be. It drops (the server stops), comes back on the same
port, hangs (connected, no frames), and a camera that never answers gives up after ``max_reconnects``."""

from __future__ import annotations

import threading
import time

import pytest

from edge.sources import ItemIds, SourceState
from edge.sources.base import CameraState, CameraUnavailable
from edge.sources.video import VideoSource, VideoSourceConfig
from seamline.localbroker import free_port
from tests.integration.edge.mjpeg_server import MjpegServer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


class Reader:
    """Iterates a source's garments on a thread, as the agent does; records every state it went through."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.garments: list = []
        self.error: BaseException | None = None
        self.states: list[tuple[str, tuple[str, ...]]] = []
        source.on_change(
            lambda: self.states.append((source.state.value, tuple(c.state.value for c in source.cameras())))
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for garment in self.source.garments():
                self.garments.append(garment)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.source.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _source(*urls: str, **settings) -> VideoSource:
    config = {"trigger_every_frames": 2, "reconnect_backoff_s": 0.1, "open_timeout_s": 3, "read_timeout_s": 1}
    return VideoSource(VideoSourceConfig(urls=list(urls), **{**config, **settings}), ItemIds("line1", "st1"))


def test_a_dropped_camera_reconnects_when_it_comes_back():
    camera = MjpegServer(fps=30).start()
    source = _source(camera.url, max_reconnects=100)
    reader = Reader(source)
    try:
        assert wait_until(lambda: len(reader.garments) >= 3, timeout=15), reader.states
        first = reader.garments[0]
        assert first.views[0].shape == (64, 96, 3) and first.camera_ids == ("cam0",)
        assert source.state is SourceState.RUNNING and source.delivering

        camera.stop()  # the camera loses power: its stream ends, then connections are refused
        assert wait_until(lambda: source.state is SourceState.RECONNECTING, timeout=10), reader.states
        assert wait_until(lambda: source.cameras()[0].reconnects >= 2, timeout=10)  # retried, with backoff
        (down,) = source.cameras()
        assert down.state is CameraState.RECONNECTING and not source.delivering
        assert down.failures >= 2 and "no answer within 3 s" in down.last_error
        before = len(reader.garments)

        camera.start()  # back, on the same port
        assert wait_until(lambda: len(reader.garments) >= before + 3, timeout=15), reader.states
        (up,) = source.cameras()
        assert source.state is SourceState.RUNNING and up.state is CameraState.RUNNING
        assert up.failures == 0 and up.reconnects >= 2
        assert camera.connections >= 2 and reader.error is None
    finally:
        reader.stop()
        camera.stop()
    assert source.state is SourceState.STOPPED and source.cameras()[0].state is CameraState.CLOSED
    seen = [state for state, _ in reader.states]
    assert seen.index("reconnecting") < len(seen) - 1 - seen[::-1].index("running")  # running again after


def test_a_camera_that_hangs_is_reopened_after_the_read_timeout():
    camera = MjpegServer(fps=30).start()
    source = _source(camera.url, max_reconnects=100, read_timeout_s=0.5)
    reader = Reader(source)
    try:
        assert wait_until(lambda: len(reader.garments) >= 2, timeout=15)
        camera.freeze()  # still connected, no more frames
        started = time.monotonic()
        assert wait_until(lambda: source.state is SourceState.RECONNECTING, timeout=10)
        assert time.monotonic() - started < 5  # FFmpeg's own default would hold on for 30 s
        assert "no frame within 0.5 s" in source.cameras()[0].last_error
        before = len(reader.garments)
        camera.thaw()
        assert wait_until(lambda: len(reader.garments) >= before + 2, timeout=15)
        assert source.state is SourceState.RUNNING
    finally:
        reader.stop()
        camera.stop()


def test_a_camera_that_never_opens_gives_up_after_max_reconnects():
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens: connection refused
    source = _source(url, max_reconnects=3, reconnect_backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(
        CameraUnavailable, match=r"camera cam0 \(http://.*\) gave up after 3 reconnect attempt"
    ):
        list(source.garments())
    elapsed = time.monotonic() - started
    (camera,) = source.cameras()
    assert source.state is SourceState.FAILED and camera.state is CameraState.FAILED
    assert camera.reconnects == 3 and camera.failures == 4  # the first open and three reopens
    assert elapsed < 5  # backoff 0.05 + 0.1 + 0.2 s, and refused connections fail at once


def test_of_two_cameras_the_one_that_cannot_open_is_named():
    with MjpegServer(fps=30) as camera:
        source = _source(camera.url, f"http://127.0.0.1:{free_port()}/stream.mjpg", max_reconnects=2)
        with pytest.raises(CameraUnavailable) as caught:
            list(source.garments())
    good, bad = source.cameras()
    assert "camera cam1" in str(caught.value) and "cam0" not in str(caught.value)
    assert bad.state is CameraState.FAILED and bad.reconnects == 2
    assert good.state is CameraState.CLOSED and good.last_error is None
