"""Audit samples from the real service (vLLM CPU, real broker, gRPC): the garments it settles automatically
and samples are queued at low priority as audit items, and their verdicts and line commands are unchanged
(final, automatic); nothing else is sampled."""

import json
import time

import pytest

from cloud.config import CloudConfig
from cloud.routing.audit import sampled
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics
from seamline.inspection.v1 import inspection_pb2 as pb
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
SHARE = 0.5


def test_automatically_settled_garments_are_sampled_for_blind_review(tmp_path, vllm_server, mqtt_broker):
    root = f"seamline-audit{time.time_ns()}"
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": root},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}],
            "classifier": {"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
            # the tiny random model is never sure: a low bar lets it settle most garments by itself
            "routing": {"auto_threshold": 1e-6, "medium_priority_below": 1e-6, "high_priority_below": 1e-6},
            "audit": {"auto_share": 0.0, "auto_share_by_line": {"line1": SHARE}},
        }
    )
    verdicts: dict[str, dict] = {}
    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"audit-{time.time_ns()}", persistent_session=False
    )
    recorder.subscribe(
        LineTopics(root, "site1", "line1").verdicts,
        lambda _t, p: verdicts.setdefault(json.loads(p)["item_id"], json.loads(p)),
    )
    recorder.start()
    assert recorder.wait_connected(10)
    service = ServiceThread(config, cloud)
    spool = Spool(tmp_path / "edge" / "spool.db")
    for item_id, payload in _garments("line1", 40, seed=7):
        spool.put(item_id, payload)
    uplink = Uplink(
        spool,
        insecure_channel_factory(f"127.0.0.1:{service.port}", max_message_bytes=8 << 20),
        pb.AgentHello(agent_id="edge-line1", site_id="site1", line_id="line1", contract_version="v1"),
        UplinkConfig(ack_timeout_s=30),
    )
    try:
        uplink.start()
        assert wait_until(lambda: len(verdicts) == 40, timeout=300), len(verdicts)
        queue = {q["item_id"]: q for q in service.service.audit.review_queue(limit=100)}
        metric = service.service.metrics.audit_samples._value.get()
    finally:
        uplink.stop()
        service.stop()
        recorder.stop()
    automatic = {i for i, v in verdicts.items() if v["route"] == "auto"}
    # the random tiny model's answers vary from run to run; the hash decides which of them are sampled
    assert len(automatic) >= 8, "the test needs automatic verdicts to sample from"
    expected = {i for i in automatic if sampled(i, SHARE)}
    audit = {i for i, q in queue.items() if q["kind"] == "audit"}
    assert audit == expected and audit
    assert metric == len(audit)
    for item_id in audit:
        assert queue[item_id]["priority"] == "low"
        assert verdicts[item_id]["final"] and verdicts[item_id]["decision"] in ("pass", "reject")
    routed = {i for i, v in verdicts.items() if v["route"] == "human"}
    assert {i for i, q in queue.items() if q["kind"] == "routed"} == routed
