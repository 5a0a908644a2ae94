"""The edge agent end to end on real parts: ONNX Runtime detector, a broker, cloud ingress on a free port."""

import threading
import time

import pytest

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, load_config, load_section
from seamline.contract import messages as m
from seamline.contract.mqtt import LineTopics
from seamline.sampling import sampled
from tests.fixtures.cloud import IngressThread
from tests.integration.edge.agent_harness import CommandRecorder, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _agent(tmp_path, mqtt_broker, ingress_address, detector, *, count, threshold, rate_hz=20.0, budget_s=1.5):
    root = f"seamline-t{time.time_ns()}"
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=ingress_address,
        detector=detector,
        source={
            "type": "synthetic",
            "rate_hz": rate_hz,
            "count": count,
            "synth": {"width": 640, "height": 360},
        },
        threshold=threshold,
        topic_root=root,
        budget_s=budget_s,
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    return agent, LineTopics(root, "site1", "line1")


def test_verdicts_in_time_become_commands_and_the_rest_fail_safe(tmp_path, mqtt_broker, tiny_onnx_detector):
    cloud = IngressThread(tmp_path / "cloud").start()
    # A budget with room for a loaded CI machine (12 garments at 20/s queue behind one detector thread):
    # the test is about which garments are answered in time, not about how short the budget can be.
    agent, topics = _agent(
        tmp_path, mqtt_broker, cloud.address, tiny_onnx_detector, count=12, threshold=0.0, budget_s=4.0
    )
    recorder = CommandRecorder(mqtt_broker.url, topics)
    publisher = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"cloud-stand-{time.time_ns()}", persistent_session=False
    )
    publisher.start()
    answered = []

    def answer(record):
        # The test plays the verdict publisher for every other garment: reject, in time.
        if len(cloud.accepted) % 2:
            return
        verdict = m.Verdict(
            item_id=record.item_id,
            site_id="site1",
            line_id="line1",
            station_id="st1",
            source="cloud",
            final=True,
            decision="reject",
            route="auto",
            priority="none",
            confidence=0.97,
            models=m.ModelVersions(detector="t"),
            timestamps=m.VerdictTimestamps(captured_at=record.captured_at, decided_at=m.utcnow()),
        )
        publisher.publish(topics.verdicts, verdict.to_json())
        answered.append(record.item_id)

    cloud.servicer.on_accepted = lambda record: (cloud.accepted.append(record), answer(record))
    try:
        agent.start()
        agent.run()
        assert agent.drain(30)
        assert wait_until(lambda: len(recorder.commands) == 12)
        time.sleep(0.5)
    finally:
        agent.stop()
        publisher.stop()
        recorder.stop()
        cloud.stop()
    assert not recorder.invalid
    assert all(len(ids) == 1 for ids in recorder.distinct_commands().values())
    assert len(cloud.accepted) == 12  # threshold 0: every garment has crops
    for item, commands in recorder.commands.items():
        command = commands[0]
        if item in answered:
            assert (command["action"], command["cause"]) == ("reject", "verdict")
        else:
            assert (command["action"], command["cause"]) == ("divert_review", "deadline_missed")
    assert agent.metrics.deadline_misses._value.get() == 12 - len(answered)


def test_nothing_detected_passes_at_the_edge_without_a_cloud_call(tmp_path, mqtt_broker, tiny_onnx_detector):
    cloud = IngressThread(tmp_path / "cloud").start()
    agent, topics = _agent(tmp_path, mqtt_broker, cloud.address, tiny_onnx_detector, count=5, threshold=1.0)
    recorder = CommandRecorder(mqtt_broker.url, topics)
    try:
        agent.start()
        agent.run()
        assert agent.drain(20)
        assert wait_until(lambda: len(recorder.commands) == 5 and len(recorder.verdicts) == 5)
    finally:
        agent.stop()
        recorder.stop()
        cloud.stop()
    # no classification is asked for; only the audit sample of a passed garment (edge.audit.passed_share,
    # 1 %: tests/integration/edge/test_passed_audit.py) may reach the cloud, with its views
    sampled_ids = {i for i in recorder.commands if sampled(i, agent.edge.audit.passed_share, "passed")}
    assert {r.item_id for r in cloud.accepted} == sampled_ids
    assert all(r.purpose == "audit_passed" for r in cloud.accepted)
    assert {(c[0]["action"], c[0]["cause"]) for c in recorder.commands.values()} == {("pass", "no_detection")}
    assert all(
        v["source"] == "edge" and v["final"] and v["decision"] == "pass" and v["defects"] == []
        for v in recorder.verdicts
    )
    assert {v["verdict_id"] for v in recorder.verdicts} == {
        c[0]["verdict_id"] for c in recorder.commands.values()
    }


def test_cloud_down_for_30_s_mid_stream(tmp_path, mqtt_broker, tiny_onnx_detector):
    """The issue's reliability case: one command each, late ones to review, the spool drains, nothing lost."""
    cloud = IngressThread(tmp_path / "cloud").start()
    port = cloud.port
    agent, topics = _agent(
        tmp_path,
        mqtt_broker,
        cloud.address,
        tiny_onnx_detector,
        count=60,
        threshold=0.0,
        rate_hz=1.5,
        budget_s=1.0,
    )
    recorder = CommandRecorder(mqtt_broker.url, topics)
    runner = threading.Thread(target=agent.run)
    try:
        agent.start()
        runner.start()
        assert wait_until(lambda: len(cloud.accepted) >= 5)
        cloud.stop()
        down_at = time.monotonic()
        time.sleep(30)
        assert len(agent.spool) > 10  # garments piled up while the WAN was down
        cloud = IngressThread(tmp_path / "cloud", port=port).start()
        up_after = time.monotonic() - down_at
        runner.join(120)
        assert agent.drain(60), agent.ledger.counts()
        assert wait_until(lambda: len(recorder.commands) == 60)
        time.sleep(0.5)
    finally:
        agent.stop()
        recorder.stop()
        cloud.stop()
    assert up_after >= 30
    assert all(len(ids) == 1 for ids in recorder.distinct_commands().values())
    assert {(c[0]["action"], c[0]["cause"]) for c in recorder.commands.values()} == {
        ("divert_review", "deadline_missed")
    }
    assert cloud.audit.counts() == {"accepted": 60}  # every garment reached the cloud in the end


def test_bad_frames_are_skipped_and_the_agent_keeps_running(tmp_path, mqtt_broker, tiny_onnx_detector):
    import struct
    import zlib

    import numpy as np

    from seamline.imaging import encode_jpeg

    frames = tmp_path / "frames"
    frames.mkdir()
    good = encode_jpeg(np.full((360, 640, 3), 120, np.uint8))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    (frames / "00_good.jpg").write_bytes(good)
    (frames / "01_zero.jpg").write_bytes(b"")
    (frames / "02_truncated.jpg").write_bytes(
        encode_jpeg(np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8))[:5000]
    )
    (frames / "03_bomb.png").write_bytes(bomb)
    (frames / "04_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 500)
    (frames / "05_good.jpg").write_bytes(good)
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-bad{time.time_ns()}"
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        source={"type": "folder", "path": str(frames)},
        threshold=1.0,
        topic_root=root,
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    recorder = CommandRecorder(mqtt_broker.url, LineTopics(root, "site1", "line1"))
    try:
        agent.start()
        agent.run()
        assert agent.drain(20)
        assert wait_until(lambda: len(recorder.commands) == 2)
    finally:
        agent.stop()
        recorder.stop()
        cloud.stop()
    assert agent.processed == 2 and agent.source.skipped == 4
    assert agent.metrics.frames_skipped._value.get() == 4


def test_garments_dropped_behind_the_detector_are_diverted_and_recorded_in_the_cloud(
    tmp_path, mqtt_broker, tiny_onnx_detector
):
    """A live camera outruns the detector: every garment still gets its one command, and the cloud's audit
    store holds every garment, the dropped ones as records of the drop."""
    import numpy as np

    from seamline.imaging import encode_jpeg

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(30):
        (frames / f"{i:02d}.jpg").write_bytes(encode_jpeg(np.full((180, 320, 3), 60 + 5 * i, np.uint8)))
    cloud = IngressThread(tmp_path / "cloud").start()
    root = f"seamline-drop{time.time_ns()}"
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        # as fast as files read: the source fills the one-garment buffer long before the detector empties it
        source={"type": "folder", "path": str(frames)},
        threshold=0.0,  # every inspected garment has crops and goes to the cloud as a garment
        topic_root=root,
        drop_strategy="drop_oldest",
        buffer_capacity=1,
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    recorder = CommandRecorder(mqtt_broker.url, LineTopics(root, "site1", "line1"))
    try:
        agent.start()
        agent.run()
        assert agent.drain(30), agent.ledger.counts()
        assert wait_until(lambda: len(recorder.commands) == 30)
        time.sleep(0.5)
    finally:
        agent.stop()
        recorder.stop()
        cloud.stop()
    dropped = int(agent.metrics.garments_dropped._value.get())
    assert dropped >= 1 and agent.processed == 30 - dropped
    assert not recorder.invalid
    assert all(len(ids) == 1 for ids in recorder.distinct_commands().values())
    assert cloud.audit.counts() == {"accepted": 30 - dropped, "dropped_at_edge": dropped}
    sent = {r.item_id for r in cloud.accepted}
    for item_id, commands in recorder.commands.items():
        row = cloud.audit.garment(item_id)
        if item_id in sent:
            assert row["status"] == "accepted"
            continue
        assert row["status"] == "dropped_at_edge" and row["crops"] == []
        assert (row["drop_reason"], row["drop_line_action"]) == ("detector_behind", "divert_review")
        assert row["agent_id"] == agent.agent_id and row["dropped_at"] >= row["captured_at"]
        assert (commands[0]["action"], commands[0]["cause"]) == ("divert_review", "deadline_missed")
