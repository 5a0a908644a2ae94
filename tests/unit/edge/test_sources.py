"""Sources: grouping, bad files skipped, states, drop strategies, video and synthetic; camera states, masked
credentials, the GStreamer check."""

import re
import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge.sources import (
    DropStrategy,
    GarmentBuffer,
    ItemIds,
    SourceState,
    build_source,
)
from edge.sources.base import CameraState, CameraUnavailable, CapturedGarment, mask_credentials
from edge.sources.folder import FolderSourceConfig, group_views
from edge.sources.synthetic import SyntheticSourceConfig
from edge.sources.video import VideoSourceConfig, gstreamer_in_build, require_gstreamer
from seamline.errors import ConfigError
from seamline.imaging import encode_jpeg, encode_png
from seamline.synth import SynthConfig


def _png_bomb() -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b"")
    )


def _ids():
    return ItemIds("line1", "st1")


def test_item_ids_are_unique_and_sortable():
    ids = _ids()
    values = [ids.next() for _ in range(100)]
    assert len(set(values)) == 100 and values == sorted(values)
    assert all(v.startswith("line1-st1-") for v in values)
    # within the contract's id alphabet, and never an id that names nothing ("." or "..")
    assert all(re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", v) and v.strip(".") for v in values)


def test_views_are_grouped_by_name(tmp_path):
    files = [tmp_path / n for n in ["a_v1.jpg", "a_v0.jpg", "b.png", "c_v0.jpg"]]
    groups = group_views(sorted(files))
    assert [[p.name for _, p in g] for g in groups] == [["a_v0.jpg", "a_v1.jpg"], ["b.png"], ["c_v0.jpg"]]


def test_folder_source_skips_bad_files_and_goes_on(tmp_path):
    image = np.full((64, 96, 3), 100, np.uint8)
    (tmp_path / "01_good_v0.jpg").write_bytes(encode_jpeg(image))
    (tmp_path / "01_good_v1.png").write_bytes(encode_png(image))
    (tmp_path / "02_empty.jpg").write_bytes(b"")
    (tmp_path / "03_truncated.jpg").write_bytes(
        encode_jpeg(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))[:2000]
    )
    (tmp_path / "04_bomb.png").write_bytes(_png_bomb())
    (tmp_path / "05_garbage.webp").write_bytes(b"RIFF....WEBPnonsense")
    (tmp_path / "06_good.jpg").write_bytes(encode_jpeg(image))
    source = build_source(FolderSourceConfig(path=tmp_path), _ids())
    garments = list(source.garments())
    assert [g.source_ref for g in garments] == ["01_good_v0.jpg,01_good_v1.png", "06_good.jpg"]
    assert garments[0].views[0].shape == (64, 96, 3)
    assert source.skipped == 4 and source.state is SourceState.ENDED


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_source(FolderSourceConfig(path=tmp_path / "nope"), _ids())


def test_stop_ends_in_stopped_state(tmp_path):
    for i in range(5):
        (tmp_path / f"{i}.jpg").write_bytes(encode_jpeg(np.zeros((8, 8, 3), np.uint8)))
    source = build_source(FolderSourceConfig(path=tmp_path, loop=True), _ids())
    seen = 0
    for _ in source.garments():
        seen += 1
        if seen == 12:
            source.stop()
    assert seen == 12 and source.state is SourceState.STOPPED


def test_state_machine_refuses_illegal_moves(tmp_path):
    source = build_source(FolderSourceConfig(path=tmp_path), _ids())
    source._move(SourceState.RUNNING)
    source._move(SourceState.ENDED)
    with pytest.raises(RuntimeError, match="from ended to running"):
        source._move(SourceState.RUNNING)


def _garment(i: int) -> CapturedGarment:
    return CapturedGarment(f"g{i}", (np.zeros((2, 2, 3), np.uint8),), ("c",), None, "")  # type: ignore[arg-type]


def test_drop_oldest_keeps_the_newest():
    buffer = GarmentBuffer(2, DropStrategy.DROP_OLDEST)
    dropped = [buffer.put(_garment(i)) for i in range(4)]
    assert [g and g.item_id for g in dropped] == [None, None, "g0", "g1"]
    assert [buffer.get().item_id, buffer.get().item_id] == ["g2", "g3"]


def test_drop_oldest_never_drops_the_end_marker():
    import threading

    buffer = GarmentBuffer(1, DropStrategy.DROP_OLDEST)
    buffer.put(_garment(0))
    ender = threading.Thread(target=buffer.put, args=(None,))  # the end marker waits for room, never evicts
    ender.start()
    ender.join(0.2)
    assert ender.is_alive()
    assert buffer.get().item_id == "g0"
    ender.join(5)
    assert buffer.get() is None


def test_video_file_source_triggers_every_n_frames(tmp_path):
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(30):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()
    source = build_source(VideoSourceConfig(urls=[str(path)], trigger_every_frames=10), _ids())
    garments = list(source.garments())
    assert [g.source_ref for g in garments] == ["frame 10", "frame 20", "frame 30"]
    assert garments[0].views[0].shape == (48, 64, 3) and source.state is SourceState.ENDED


def test_missing_video_file_fails(tmp_path):
    source = build_source(VideoSourceConfig(urls=[str(tmp_path / "none.avi")]), _ids())
    with pytest.raises(OSError, match="cannot open camera"):
        list(source.garments())
    assert source.state is SourceState.FAILED


def test_synthetic_source_yields_its_views_and_keeps_truth():
    config = SyntheticSourceConfig(synth=SynthConfig(width=320, height=192, views=2), rate_hz=1000, count=3)
    source = build_source(config, _ids())
    garments = list(source.garments())
    assert len(garments) == 3 and all(len(g.views) == 2 for g in garments)
    assert garments[0].views[0].shape == (192, 320, 3)
    assert set(source.truth) == {g.item_id for g in garments}


def test_a_video_file_that_cannot_be_opened_is_marked_failed(tmp_path):
    source = build_source(VideoSourceConfig(urls=[str(tmp_path / "none.avi")]), _ids())
    with pytest.raises(CameraUnavailable, match="cannot open camera cam0"):
        list(source.garments())
    (camera,) = source.cameras()
    assert camera.state is CameraState.FAILED and camera.reconnects == 0
    assert not source.delivering


def test_a_live_camera_gives_up_by_default():
    """The issue: a camera that never opens was retried for ever. Now 10 attempts unless told otherwise."""
    config = VideoSourceConfig(urls=["rtsp://cam/stream"])
    assert config.max_reconnects == 10 and config.open_timeout_s == 10 and config.read_timeout_s == 5
    assert "0 = retry for ever" in VideoSourceConfig.model_fields["max_reconnects"].description


def test_credentials_in_camera_urls_are_masked():
    source = build_source(
        VideoSourceConfig(urls=["rtsp://admin:s3cr:et@10.0.0.5:554/h264", "/dev/video0"]), _ids()
    )
    assert [c.url for c in source.cameras()] == ["rtsp://admin:***@10.0.0.5:554/h264", "/dev/video0"]
    assert [c.state for c in source.cameras()] == [CameraState.CONNECTING] * 2
    assert source.live  # a V4L2 device is a live camera too: reconnected, not ended
    assert (
        mask_credentials("rtspsrc location=rtsps://u:p@cam/x latency=0 ! appsink")
        == "rtspsrc location=rtsps://u:***@cam/x latency=0 ! appsink"
    )
    assert mask_credentials("http://cam/stream.mjpg") == "http://cam/stream.mjpg"


def test_gstreamer_support_is_read_from_the_build_information():
    assert gstreamer_in_build(
        "  Video I/O:\n    FFMPEG:   YES\n    GStreamer:                   YES (1.20.3)\n"
    )
    assert not gstreamer_in_build("  Video I/O:\n    GStreamer:                   NO\n")
    assert not gstreamer_in_build("no video section at all")


def _opencv(*, registry: bool | None, build: str) -> SimpleNamespace:
    """A stand-in for the cv2 module: ``registry`` None = an OpenCV without cv2.videoio_registry."""
    module = SimpleNamespace(
        __version__="4.8.0",
        __file__="/usr/lib/python3/dist-packages/cv2/__init__.py",
        CAP_GSTREAMER=cv2.CAP_GSTREAMER,
        getBuildInformation=lambda: build,
    )
    if registry is not None:
        module.videoio_registry = SimpleNamespace(
            hasBackend=lambda api: registry and api == cv2.CAP_GSTREAMER
        )
    return module


def test_gstreamer_needs_an_opencv_built_with_it():
    require_gstreamer(_opencv(registry=True, build="GStreamer: NO"))  # the registry sees plugins: it wins
    require_gstreamer(_opencv(registry=None, build="    GStreamer:   YES (1.20.3)"))
    for opencv in (_opencv(registry=False, build=""), _opencv(registry=None, build="    GStreamer:   NO")):
        with pytest.raises(ConfigError) as caught:
            require_gstreamer(opencv)
        message = str(caught.value)
        assert "edge.source.gstreamer is true" in message and "OpenCV 4.8.0" in message
        assert "has no GStreamer" in message and "opencv-python-headless" in message
        assert "sudo apt install nvidia-opencv" in message and "--system-site-packages" in message
        assert "gstreamer: false" in message
        assert caught.value.exit_code == 2


@pytest.mark.skipif(
    cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER), reason="this OpenCV has GStreamer (a Jetson's)"
)
def test_gstreamer_sources_are_refused_with_the_declared_opencv():
    """opencv-python-headless (what Seamline declares) has no GStreamer: refused before anything opens."""
    pipeline = "nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! appsink"
    with pytest.raises(ConfigError, match="has no GStreamer"):
        build_source(VideoSourceConfig(urls=[pipeline], gstreamer=True), _ids())
