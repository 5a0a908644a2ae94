"""Detector releases on real parts: `seamline rollout detector publish` signs the demo detector, uploads it to
an S3 server and announces its signed manifest, retained, on a real broker; a running edge agent fetches it
over the presigned URL, verifies it, smoke-tests it and swaps between garments, every garment keeping exactly
one line command. Tampered, wrongly hashed, expired, foreign-signed and lower-serial releases are refused with
their reason while the old version keeps running. A release that keeps killing the agent is reverted on its
own at the next start."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cloud.learning.rollout_cli import upload_artefact
from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.clock import utcnow
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, load_config, load_section
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.release import ReleaseManifest, pack_artefact, sign_manifest
from tests.fixtures.cloud import IngressThread
from tests.fixtures.pki import release_keys
from tests.integration.edge.agent_harness import CommandRecorder, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "models" / "demo" / "detector"


def _config(tmp_path: Path, mqtt_broker, cloud, detector: Path, root: str, public: Path, **release) -> Path:
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=detector,
        source={
            "type": "synthetic",
            "rate_hz": 4,
            "count": release.pop("count", 60),
            "synth": {"width": 640, "height": 360},
        },
        threshold=1.0,  # nothing is ever found: every garment is passed at the edge, one command each
        topic_root=root,
        budget_s=3.0,
    )
    data = yaml.safe_load(path.read_text())
    data["edge"]["release"] = {"public_key": str(public), "max_detect_ms": 5000, **release}
    data["edge"]["metrics_port"] = None
    path.write_text(yaml.safe_dump(data))
    return path


def _announce(broker_url: str, topic: str, payload: str) -> None:
    bus = MqttBus(MqttConfig(url=broker_url), client_id=f"rel-{time.time_ns()}", persistent_session=False)
    acked = []
    bus.start()
    assert bus.wait_connected(10)
    bus.publish(topic, payload, retain=True, on_acked=lambda: acked.append(1))
    assert wait_until(lambda: acked, timeout=10)
    bus.stop()


def _manifest(url: str, data: bytes, serial: int, **changes) -> ReleaseManifest:
    import hashlib

    now = utcnow()
    fields = dict(
        site_id="site1",
        version="demo-detector@2",
        serial=serial,
        artefact_url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )
    fields.update(changes)
    return ReleaseManifest(**fields)


def _publish_cli(
    config: Path, key: Path, store: str | None, serial: int, *extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "rollout",
            "detector",
            "publish",
            str(DEMO),
            "--config",
            str(config),
            "--key",
            str(key),
            "--serial",
            str(serial),
            *(["--store", store] if store else []),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def _line(tmp_path: Path, mqtt_broker, detector: Path, root: str, public: Path, count: int):
    """A cloud ingress, an edge agent (started, its detection loop running) and a recorder of its line."""
    cloud = IngressThread(tmp_path / "cloud").start()
    topics = LineTopics(root, "site1", "line1")
    path = _config(tmp_path, mqtt_broker, cloud, detector, root, public, count=count)
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    recorder = CommandRecorder(mqtt_broker.url, topics)
    agent.start()
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    return cloud, topics, path, agent, recorder, runner


def test_a_signed_release_is_taken_between_garments_and_bad_ones_are_refused(
    tmp_path, mqtt_broker, s3_server, tiny_onnx_detector
):
    private, public = release_keys(tmp_path, "release")
    stranger, _ = release_keys(tmp_path, "stranger")
    root = f"seamline-rel{time.time_ns()}"
    statuses = []
    watcher = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"st-{time.time_ns()}", persistent_session=False
    )
    watcher.subscribe(
        LineTopics(root, "site1", "line1").edge_status, lambda _t, p: statuses.append(json.loads(p))
    )
    watcher.start()
    store = s3_server.crop_store_url("releases", "site1")
    cloud, topics, path, agent, recorder, runner = _line(
        tmp_path, mqtt_broker, tiny_onnx_detector, root, public, 80
    )
    old = agent.detector.meta.version
    try:
        assert wait_until(lambda: agent.processed >= 3, timeout=60)
        data = pack_artefact(DEMO, private)
        url = upload_artefact(store, "good.tar", data, 3600)

        def refused(reason: str, count: int = 1) -> bool:
            return agent.releases.refused.get(reason, 0) >= count

        # signed by a key the edge does not trust
        _announce(mqtt_broker.url, topics.detector_releases, sign_manifest(_manifest(url, data, 2), stranger))
        assert wait_until(lambda: refused("signature"), timeout=30), agent.releases.refused
        # a digest that is not the artefact's
        wrong = _manifest(url, data, 2, sha256="0" * 64)
        _announce(mqtt_broker.url, topics.detector_releases, sign_manifest(wrong, private))
        assert wait_until(lambda: refused("digest"), timeout=30), agent.releases.refused
        # expired
        stale = _manifest(url, data, 2, expires_at=utcnow() - timedelta(seconds=1))
        _announce(mqtt_broker.url, topics.detector_releases, sign_manifest(stale, private))
        assert wait_until(lambda: refused("expired"), timeout=30), agent.releases.refused
        # a tampered artefact: the manifest's digest matches, the folder's signature does not
        import io
        import tarfile

        tampered = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=tampered, mode="w") as dst:
            for member in src.getmembers():
                content = src.extractfile(member).read()
                if member.name == "detector/detector.json":
                    content = content.replace(b'"version"', b'"version" ', 1)
                member.size = len(content)
                dst.addfile(member, io.BytesIO(content))
        bad_url = upload_artefact(store, "tampered.tar", tampered.getvalue(), 3600)
        bad = _manifest(bad_url, tampered.getvalue(), 2)
        _announce(mqtt_broker.url, topics.detector_releases, sign_manifest(bad, private))
        assert wait_until(lambda: refused("signature", 2), timeout=30), agent.releases.refused
        assert "bad signature" in agent.releases.last_refusal
        assert agent.detector.meta.version == old  # every refusal kept the running version

        # a canary pinned to another line: not taken here
        other = _manifest(url, data, 3, canary={"lines": ["line9"]})
        _announce(mqtt_broker.url, topics.detector_releases, sign_manifest(other, private))
        assert wait_until(lambda: refused("not_for_this_line"), timeout=30), agent.releases.refused
        assert agent.detector.meta.version == old

        # the real thing, through the command line: signed, uploaded to S3, announced
        run = _publish_cli(path, private, store, 5, "--notes", "test")
        assert run.returncode == 0, run.stderr
        assert wait_until(lambda: agent.detector.meta.version != old, timeout=60), agent.releases.last_refusal
        new = agent.detector.meta.version
        assert agent.slot.on_probation and agent.slot.active.serial == 5
        assert wait_until(
            lambda: any((s.get("detector") or {}).get("serial") == 5 for s in statuses), timeout=30
        ), statuses[-1:]
        # a lower serial that is not a rollback
        run = _publish_cli(path, private, store, 4)
        assert run.returncode == 0, run.stderr
        assert wait_until(lambda: refused("serial"), timeout=30), agent.releases.refused
        assert agent.detector.meta.version == new
        # a signed rollback may go lower; this one is hosted by a plain HTTP server (--out, --artefact-url)
        hosted = tmp_path / "hosted"
        hosted.mkdir()
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(hosted))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            link = f"http://127.0.0.1:{server.server_port}/rollback.tar"
            extra = ("--rollback", "--out", str(hosted / "rollback.tar"), "--artefact-url", link)
            run = _publish_cli(path, private, None, 4, *extra)
            assert run.returncode == 0, run.stderr
            assert wait_until(
                lambda: agent.slot.release is not None and agent.slot.release.serial == 4, timeout=60
            ), agent.releases.last_refusal
        finally:
            server.shutdown()
        assert agent.slot.release.manifest.rollback and agent.releases.serial == 5  # the highest stays
        assert wait_until(lambda: not runner.is_alive(), timeout=120)
        assert agent.drain(30)
    finally:
        agent.stop()
        watcher.stop()
        cloud.stop()
    verdicts = {v["item_id"]: v for v in recorder.verdicts}
    versions = [verdicts[i]["models"]["detector"] for i in sorted(verdicts)]
    assert set(versions) == {old, new}
    switched = versions.index(new)
    assert versions[switched:] == [new] * (len(versions) - switched), "never back once swapped"
    assert len(recorder.commands) == 80 and all(len(c) == 1 for c in recorder.commands.values())
    assert not recorder.invalid
    for status in statuses:
        validate_payload("edge_status", status)


def _start(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seamline", "edge", "run", "--config", str(config)],
        cwd=REPO,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_release_that_keeps_killing_the_agent_is_reverted_at_the_next_start(
    tmp_path, mqtt_broker, s3_server, tiny_onnx_detector
):
    private, public = release_keys(tmp_path, "release")
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-crashrel{time.time_ns()}"
    path = _config(
        tmp_path,
        mqtt_broker,
        cloud,
        tiny_onnx_detector,
        root,
        public,
        count=100000,
        max_boots=1,
        probation_garments=100000,
    )
    state = tmp_path / "data" / "edge" / "releases" / "active.json"
    statuses = []
    watcher = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"st-{time.time_ns()}", persistent_session=False
    )
    watcher.subscribe(
        LineTopics(root, "site1", "line1").edge_status, lambda _t, p: statuses.append(json.loads(p))
    )
    watcher.start()
    log = tmp_path / "agent.log"
    agent = _start(path, log)
    try:
        assert wait_until(lambda: any(s.get("detector") for s in statuses), timeout=60), log.read_text()[
            -3000:
        ]
        old = statuses[-1]["detector"]["version"]
        run = _publish_cli(path, private, s3_server.crop_store_url("releases", "site1"), 1)
        assert run.returncode == 0, run.stderr
        assert wait_until(lambda: state.exists() and json.loads(state.read_text())["release"], timeout=60), (
            log.read_text()[-3000:]
        )
        for boot in (1, 2):  # the release is on probation when the agent dies, twice
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            statuses.clear()
            agent = _start(path, log)
            assert wait_until(lambda: any(s.get("detector") for s in statuses), timeout=60), log.read_text()[
                -3000:
            ]
            detector = statuses[-1]["detector"]
            if boot == 1:  # one start on probation is allowed (max_boots 1): it runs again
                assert detector["release"] == "demo-detector@2" and detector["on_probation"]
        # the second start found it still on probation: reverted before it ran, and said so
        assert detector["version"] == old and detector["release"] is None
        assert "crashed the agent" in detector["last_revert"]
        assert json.loads(state.read_text())["serial"] == 1  # its retained announcement is not taken again
        time.sleep(2)
        assert statuses[-1]["detector"]["release"] is None
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        watcher.stop()
        cloud.stop()


def test_a_share_canary_detects_its_share_of_garments_by_id_through_a_running_agent(
    tmp_path, mqtt_broker, s3_server, tiny_onnx_detector
):
    from seamline.sampling import sampled

    private, public = release_keys(tmp_path, "release")
    root = f"seamline-sharerel{time.time_ns()}"
    cloud, _, path, agent, recorder, runner = _line(
        tmp_path, mqtt_broker, tiny_onnx_detector, root, public, 60
    )
    old = agent.detector.meta.version
    try:
        assert wait_until(lambda: agent.processed >= 3, timeout=60)
        store = s3_server.crop_store_url("releases", "site1")
        run = _publish_cli(path, private, store, 1, "--share", "0.5")
        assert run.returncode == 0, run.stderr
        assert wait_until(lambda: agent.slot.release is not None, timeout=60), agent.releases.last_refusal
        release = agent.slot.release.version
        assert agent.detector.meta.version == old  # a share canary never becomes the line's active version
        assert wait_until(lambda: not runner.is_alive(), timeout=120)
        assert agent.drain(30)
        assert not agent.slot._garment_runtime  # every commanded garment forgotten
    finally:
        agent.stop()
        cloud.stop()
    verdicts = {v["item_id"]: v["models"]["detector"] for v in recorder.verdicts}
    after = sorted(verdicts)[sorted(verdicts).index(min(i for i in verdicts if verdicts[i] == release)) :]
    assert len(after) >= 20, verdicts
    # from its first garment on, the release detects exactly the garments its hash picks, and the rest stay
    expected = [release if sampled(i, 0.5, f"detector:{release}") else old for i in after]
    assert [verdicts[i] for i in after] == expected
    assert {release, old} <= set(expected)
    assert len(recorder.commands) == 60 and all(len(c) == 1 for c in recorder.commands.values())
    assert not recorder.invalid
