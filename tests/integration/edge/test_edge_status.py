"""``edge/status``: the retained health an operator and the PLC read beside the bare availability. Real parts:
a broker, a cloud ingress that does not serve the agent's line, the agent with the tiny detector."""

import json
import time

import pytest

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, load_config, load_section
from seamline.contract.mqtt import LineTopics, validate_payload
from tests.fixtures.cloud import IngressThread
from tests.integration.edge.agent_harness import write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_cloud_that_refuses_the_agent_shows_in_its_retained_status(
    tmp_path, mqtt_broker, tiny_onnx_detector
):
    cloud = IngressThread(tmp_path / "cloud", lines=(("site1", "another-line"),)).start()
    root = f"seamline-status{time.time_ns()}"
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        source={"type": "synthetic", "rate_hz": 5, "count": 3, "synth": {"width": 640, "height": 360}},
        threshold=0.0,
        topic_root=root,
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    topics = LineTopics(root, "site1", "line1")
    try:
        agent.start()
        agent.run()
        statuses: list[dict] = []
        reader = MqttBus(
            MqttConfig(url=mqtt_broker.url), client_id=f"dash-{time.time_ns()}", persistent_session=False
        )
        reader.subscribe(topics.edge_status, lambda t, payload: statuses.append(json.loads(payload)))
        reader.start()  # a dashboard that connects later still gets it: retained
        assert wait_until(
            lambda: any(s["uplink"]["refused"] and s["spool"]["waiting"] == 3 for s in statuses), timeout=30
        ), statuses
        reader.stop()
    finally:
        agent.stop()
        cloud.stop()
    status = next(s for s in statuses if s["uplink"]["refused"] and s["spool"]["waiting"] == 3)
    validate_payload("edge_status", status)
    assert status["agent_id"] == agent.agent_id and status["uplink"]["connected"] is False
    assert "PERMISSION_DENIED" in status["uplink"]["last_error"]
    assert status["spool"]["waiting"] == 3
    assert status["problems"] and "the cloud refuses this agent" in status["problems"][0]


def test_the_agents_metrics_move_with_the_line(tmp_path, mqtt_broker, tiny_onnx_detector):
    """/metrics of a running agent, scraped over HTTP: nothing detected on 4 garments, so 4 local passes."""
    from prometheus_client.parser import text_string_to_metric_families

    cloud = IngressThread(tmp_path / "cloud").start()
    path = write_config(
        tmp_path / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=cloud.address,
        detector=tiny_onnx_detector,
        source={"type": "synthetic", "rate_hz": 10, "count": 4, "synth": {"width": 640, "height": 360}},
        threshold=1.0,  # nothing is ever found
        topic_root=f"seamline-edge-metrics{time.time_ns()}",
        metrics_port=0,
    )
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))

    def scrape() -> dict:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=10) as reply:
            families = text_string_to_metric_families(reply.read().decode())
            return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}

    try:
        agent.start()
        agent.run()
        assert agent.drain(20)
        assert wait_until(lambda: scrape()[("seamline_edge_local_passes_total", ())] == 4, timeout=10)
        after = scrape()
    finally:
        agent.stop()
        cloud.stop()
    assert after[("seamline_edge_garments_total", ())] == 4
    assert after[("seamline_edge_line_commands_total", (("action", "pass"), ("cause", "no_detection")))] == 4
    assert after[("seamline_edge_detect_seconds_count", ())] == 4
