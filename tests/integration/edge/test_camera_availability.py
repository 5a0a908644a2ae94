"""A camera the agent cannot read is visible, and a camera that gives up ends the agent for its supervisor.

Real parts: the broker, a cloud ingress, the agent with the tiny detector, a real MJPEG-over-HTTP camera
(``mjpeg_server.py``) read by OpenCV, and ``seamline edge run`` as systemd starts it: ``NOTIFY_SOCKET`` (a
real AF_UNIX datagram socket) and ``WATCHDOG_USEC`` in its environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, load_config, load_section
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.localbroker import free_port
from tests.fixtures.cloud import IngressThread
from tests.integration.edge.agent_harness import write_config
from tests.integration.edge.mjpeg_server import MjpegServer
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


class LineWatcher:
    """A dashboard on the broker: every edge/availability and edge/status payload, retained ones included."""

    def __init__(self, broker_url: str, topics: LineTopics) -> None:
        self.availability: list[str] = []
        self.statuses: list[dict] = []
        self.bus = MqttBus(
            MqttConfig(url=broker_url), client_id=f"dash-{time.time_ns()}", persistent_session=False
        )
        self.bus.subscribe(topics.edge_availability, lambda t, p: self.availability.append(p.decode()))
        self.bus.subscribe(topics.edge_status, lambda t, p: self.statuses.append(json.loads(p)))
        self.bus.start()
        assert self.bus.wait_connected(10)

    def camera_is(self, state: str) -> bool:
        """The latest status has its first camera in ``state``."""
        return bool(self.statuses) and self.statuses[-1]["cameras"][0]["state"] == state

    def stop(self) -> None:
        self.bus.stop()


def _video(url: str, **settings) -> dict:
    return {
        "type": "video",
        "urls": [url],
        "trigger_every_frames": 5,
        "open_timeout_s": 2,
        "read_timeout_s": 1,
        **settings,
    }


def _scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        families = text_string_to_metric_families(reply.read().decode())
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def _camera_state(metrics: dict, state: str) -> float:
    return metrics[("seamline_edge_camera_state", (("camera", "cam0"), ("state", state)))]


def test_a_camera_that_drops_turns_the_agent_offline_until_it_is_back(
    tmp_path, mqtt_broker, tiny_onnx_detector
):
    camera = MjpegServer(fps=25).start()
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-camera{time.time_ns()}"
    topics = LineTopics(root, "site1", "line1")
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        source=_video(camera.url, reconnect_backoff_s=0.2, max_reconnects=100),
        threshold=1.0,  # nothing is found: every garment passes at the edge
        topic_root=root,
        metrics_port=0,
        drop_strategy="drop_oldest",
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    watcher = LineWatcher(mqtt_broker.url, topics)
    runner = threading.Thread(target=agent.run, daemon=True)
    try:
        agent.start()
        runner.start()
        assert wait_until(lambda: watcher.availability[-1:] == ["online"], timeout=20), watcher.availability
        assert wait_until(lambda: agent.processed >= 2, timeout=20)
        assert wait_until(lambda: watcher.camera_is("running"), timeout=10)
        assert _camera_state(_scrape(agent.metrics_port), "running") == 1

        camera.stop()
        assert wait_until(lambda: watcher.availability[-1:] == ["offline"], timeout=10), watcher.availability
        assert wait_until(lambda: watcher.camera_is("reconnecting"), timeout=10), watcher.statuses[-1:]
        down = watcher.statuses[-1]
        validate_payload("edge_status", down)
        assert down["cameras"][0]["url"] == camera.url and down["cameras"][0]["last_error"]
        assert any(p.startswith(f"camera cam0 ({camera.url}) is reconnecting") for p in down["problems"])
        assert wait_until(lambda: agent.source.cameras()[0].reconnects >= 1, timeout=10)
        metrics = _scrape(agent.metrics_port)
        assert _camera_state(metrics, "reconnecting") == 1 and _camera_state(metrics, "running") == 0
        assert metrics[("seamline_edge_camera_reconnects_total", (("camera", "cam0"),))] >= 1
        processed = agent.processed

        camera.start()  # same port
        assert wait_until(lambda: watcher.availability[-1:] == ["online"], timeout=20), watcher.availability
        assert wait_until(lambda: agent.processed >= processed + 2, timeout=20)
        assert wait_until(lambda: watcher.camera_is("running"), timeout=10), watcher.statuses[-1:]
        assert watcher.statuses[-1]["cameras"][0]["failures"] == 0
        assert not any("camera" in p for p in watcher.statuses[-1]["problems"]), watcher.statuses[-1][
            "problems"
        ]
        assert _camera_state(_scrape(agent.metrics_port), "running") == 1
        assert agent.source_error is None
    finally:
        agent.source.stop()  # run() returns once the source has ended, as under `seamline edge run`
        runner.join(10)
        agent.stop()
        watcher.stop()
        cloud.stop()
        camera.stop()
    assert watcher.availability.count("offline") >= 1 and watcher.availability[-1] == "offline"  # stopped


def test_a_camera_that_never_opens_gives_up_and_the_agent_exits_1_under_systemd(
    tmp_path, mqtt_broker, tiny_onnx_detector
):
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-gaveup{time.time_ns()}"
    topics = LineTopics(root, "site1", "line1")
    url = f"http://127.0.0.1:{free_port()}/stream.mjpg"  # nothing listens there
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        source=_video(url, reconnect_backoff_s=0.5, max_reconnects=3),  # 0.5 + 1 + 2 s of retries
        threshold=1.0,
        topic_root=root,
    )
    folder = Path(tempfile.mkdtemp(prefix="sd-"))  # short: AF_UNIX paths stop at 108 bytes
    notify_path = folder / "notify"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(notify_path))
    systemd.settimeout(60)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",  # WatchdogSec=1: a ping every 0.5 s
    }
    started = time.monotonic()
    try:
        agent = subprocess.Popen(
            [sys.executable, "-m", "seamline", "edge", "run", "--config", str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            stdout, stderr = agent.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            agent.kill()
            stdout, stderr = agent.communicate()
            pytest.fail(f"the agent did not give up: {stderr.decode()[-3000:]}")
        elapsed = time.monotonic() - started
        systemd.setblocking(False)
        messages = []
        while True:
            try:
                messages.append(systemd.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        systemd.close()
        notify_path.unlink(missing_ok=True)
        folder.rmdir()
    err = stderr.decode()
    assert agent.returncode == 1, err[-3000:]
    assert f"error: camera cam0 ({url}) gave up after 3 reconnect attempt(s)" in err, err[-3000:]
    assert elapsed < 60

    assert messages[0].startswith("READY=1\nSTATUS=edge agent site1-line1-st1 running"), messages
    assert messages[-1].startswith("STOPPING=1\nSTATUS=stopping: camera cam0"), messages
    pings = messages[1:-1]
    assert pings and set(pings) == {"WATCHDOG=1"}, messages  # from the main loop while the camera was retried

    watcher = LineWatcher(mqtt_broker.url, topics)  # a dashboard that connects afterwards: retained state
    try:
        assert wait_until(lambda: watcher.availability and watcher.statuses, timeout=10)
    finally:
        watcher.stop()
        cloud.stop()
    assert watcher.availability[-1] == "offline"
    status = watcher.statuses[-1]
    validate_payload("edge_status", status)
    (camera,) = status["cameras"]
    assert camera["state"] == "failed" and camera["reconnects"] == 3 and camera["failures"] == 4
    assert camera["last_error"] == "OpenCV cannot open it (refused, not found, or no answer within 2 s)"
    assert any(p.startswith(f"camera cam0 ({url}) gave up") for p in status["problems"])


@pytest.mark.skipif(
    cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER), reason="this OpenCV has GStreamer (a Jetson's)"
)
def test_gstreamer_without_an_opencv_that_has_it_is_exit_2_before_anything_opens(tmp_path, mqtt_broker):
    """The declared opencv-python-headless has no GStreamer: refused at start, with what to install."""
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address="127.0.0.1:1",
        detector=tmp_path / "never-loaded.onnx",
        source={"type": "video", "gstreamer": True, "urls": ["videotestsrc ! videoconvert ! appsink"]},
        threshold=0.5,
        topic_root=f"seamline-gst{time.time_ns()}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "seamline", "edge", "run", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "error: edge.source.gstreamer is true, but the installed OpenCV" in done.stderr
    assert "sudo apt install nvidia-opencv" in done.stderr
    assert not (tmp_path / "data").exists()  # no spool, no ledger: refused before anything was opened
