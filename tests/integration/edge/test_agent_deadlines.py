"""Deadlines are kept whatever the detector does: while it hangs, and while it loads after a restart.

Real parts: a broker, cloud ingress on a free port, the tiny detector in ONNX Runtime; the detector's faults
(a hang, a slow load) are injected around the real runtime.
"""

import threading
import time
from datetime import datetime

import pytest

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from edge.detectors import build_detector
from edge.detectors.onnx_runtime import OnnxRuntimeDetector
from edge.linecontrol.ledger import CommandLedger
from seamline.config.models import load_config, load_section
from seamline.contract.mqtt import LineTopics
from seamline.domain import LineAction
from tests.fixtures.cloud import IngressThread
from tests.integration.edge.agent_harness import CommandRecorder, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLACK_S = 1.0  # generous: a loaded 2-core CI machine; bench/failsafe_lateness.py measures the real lateness


class HangingDetector(OnnxRuntimeDetector):
    """The real runtime, whose forward pass hangs (a stuck driver, say) from ``hang`` until ``release``."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.hang, self.release = threading.Event(), threading.Event()

    def forward(self, batch):
        if self.hang.is_set():
            self.release.wait(120)
        return super().forward(batch)


def _config(tmp_path, mqtt_broker, cloud, detector, *, count, budget_s, rate_hz=5.0):
    root = f"seamline-dl{time.time_ns()}"
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=detector,
        source={
            "type": "synthetic",
            "rate_hz": rate_hz,
            "count": count,
            "synth": {"width": 640, "height": 360},
        },
        threshold=0.0,
        topic_root=root,
        budget_s=budget_s,
    )
    config = load_config(path)
    return config, load_section(path, config, "edge", EdgeConfig), LineTopics(root, "site1", "line1")


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def test_fail_safe_fires_while_the_detector_hangs(tmp_path, mqtt_broker, tiny_onnx_detector):
    cloud = IngressThread(tmp_path / "cloud").start()
    config, edge, topics = _config(tmp_path, mqtt_broker, cloud, tiny_onnx_detector, count=4, budget_s=1.0)
    loaded: list[HangingDetector] = []

    def load() -> HangingDetector:
        loaded.append(HangingDetector(edge.detector))
        return loaded[0]

    agent = EdgeAgent(config, edge, load_detector=load)
    recorder = CommandRecorder(mqtt_broker.url, topics)
    runner = threading.Thread(target=agent.run)
    try:
        agent.start()
        loaded[0].hang.set()
        runner.start()
        assert wait_until(lambda: len(recorder.commands) == 4, timeout=30), dict(recorder.commands)
        assert agent.processed == 0  # the detection loop is still stuck in its first garment
        loaded[0].release.set()
        runner.join(60)
        assert agent.drain(30), agent.ledger.counts()
        time.sleep(0.5)
    finally:
        for detector in loaded:
            detector.release.set()
        agent.stop()
        recorder.stop()
        cloud.stop()
    assert all(len(ids) == 1 for ids in recorder.distinct_commands().values())
    for item, (command, *_) in recorder.commands.items():
        assert (command["action"], command["cause"]) == ("divert_review", "deadline_missed")
        # deadline_at is the garment's arrival at the diverter; the fail-safe fires the margin before it
        arrival = _seconds(command["deadline_at"])
        decision_deadline = arrival - edge.timing.actuation_margin_s
        assert decision_deadline - 0.01 <= _seconds(command["issued_at"])
        assert recorder.received_at[item] < decision_deadline + SLACK_S, (
            item,
            recorder.received_at[item] - decision_deadline,
        )
    assert len(cloud.accepted) == 4  # once released, the garments still reach the cloud for the record


def test_restart_settles_the_ledger_before_the_detector_loads(tmp_path, mqtt_broker, tiny_onnx_detector):
    cloud = IngressThread(tmp_path / "cloud").start()
    config, edge, topics = _config(tmp_path, mqtt_broker, cloud, tiny_onnx_detector, count=2, budget_s=2.0)
    # What a killed agent left in its ledger: garments whose deadline passed while it was down, one still on
    # the belt, and two commands decided but never acknowledged by the broker: one for a garment still on
    # its way to the diverter, one for a garment long past it.
    ledger = CommandLedger(config.storage.data_dir / "edge" / "commands.db")
    now = time.time()
    overdue = [f"left{i}" for i in range(5)]
    for i, item in enumerate(overdue):
        ledger.register(item, "st1", now - 60 + i)
    ledger.register("on-belt", "st1", now + 3.0)
    ledger.register("unacked", "st1", now + 20)
    unacked = ledger.decide("unacked", LineAction.PASS, "verdict", "v0", now=now - 1)
    ledger.register("stale", "st1", now - 100)
    ledger.decide("stale", LineAction.REJECT, "verdict", "v1", now=now - 101)
    ledger.close()

    loading, release = threading.Event(), threading.Event()

    def slow_load():
        """The real runtime, built after a wait (a TensorRT engine deserialising, a big model's warm-up)."""
        loading.set()
        release.wait(120)
        return build_detector(edge.detector, warm_up=False)

    agent = EdgeAgent(config, edge, load_detector=slow_load)
    recorder = CommandRecorder(mqtt_broker.url, topics)
    starter = threading.Thread(target=agent.start)
    try:
        starter.start()
        assert loading.wait(30)
        assert wait_until(lambda: set(overdue) | {"unacked"} <= set(recorder.commands), timeout=30)
        assert wait_until(lambda: "on-belt" in recorder.commands, timeout=30)  # its timer was armed too
        assert starter.is_alive() and agent.detector is None  # all of it while the detector was loading
        release.set()
        starter.join(60)
        agent.run()
        assert agent.drain(30), agent.ledger.counts()
        assert wait_until(lambda: len(recorder.commands) == 5 + 2 + 2)
        time.sleep(0.5)
        counts = agent.ledger.counts()
    finally:
        release.set()
        starter.join(60)
        agent.stop()
        recorder.stop()
        cloud.stop()
    assert all(len(ids) == 1 for ids in recorder.distinct_commands().values())
    for item in [*overdue, "on-belt"]:
        (command,) = recorder.commands[item]
        assert (command["action"], command["cause"]) == ("divert_review", "deadline_missed"), item
    on_belt = recorder.commands["on-belt"][0]
    assert now + 3.0 - 0.01 <= _seconds(on_belt["issued_at"]) < now + 3.0 + SLACK_S
    assert [(c["command_id"], c["action"]) for c in recorder.commands["unacked"]] == [
        (unacked.command_id, "pass")
    ]
    # re-sent with its own times, not as if fresh
    assert _seconds(recorder.commands["unacked"][0]["issued_at"]) == pytest.approx(now - 1, abs=0.01)
    # the stale one is never sent: the PLC diverted that garment long ago; the ledger says so
    assert "stale" not in recorder.commands
    assert counts["expired"] == 1 and counts["unpublished"] == 0
