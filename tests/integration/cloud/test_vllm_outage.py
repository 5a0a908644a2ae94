"""vLLM killed mid-run: affected garments go to review with the error, nothing is lost, and the service
recovers when vLLM returns."""

import json
import time
from collections import defaultdict

import pytest

from cloud.classifiers.vllm_server import start_vllm_server
from cloud.config import CloudConfig
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]


def test_vllm_killed_mid_run_then_back(tmp_path, tiny_qwen_dir, mqtt_broker):
    port = free_port()
    vllm = start_vllm_server(
        tiny_qwen_dir, port=port, served_model_name="tiny", worker_in_engine_process=True
    )
    vllm.wait_ready(300)
    root = f"seamline-out{time.time_ns()}"
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
            "classifier": {
                "base_url": vllm.openai_base_url,
                "model": "tiny",
                "retries": 1,
                "backoff_s": 0.2,
                "timeout_s": 20,
            },
            "max_garments_in_flight": 4,
        }
    )
    verdicts: dict[str, dict] = {}
    seen = defaultdict(int)

    def on_verdict(topic, payload):
        data = json.loads(payload)
        validate_payload("verdicts", data)
        verdicts[data["item_id"]] = data
        seen[data["item_id"]] += 1

    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"out-rec-{time.time_ns()}", persistent_session=False
    )
    recorder.subscribe(LineTopics(root, "site1", "line1").verdicts, on_verdict)
    recorder.start()
    assert recorder.wait_connected(10)
    service = ServiceThread(config, cloud)
    spool = Spool(tmp_path / "edge" / "spool.db")
    uplink = Uplink(
        spool,
        insecure_channel_factory(f"127.0.0.1:{service.port}", max_message_bytes=8 << 20),
        pb.AgentHello(agent_id="edge-out", site_id="site1", line_id="line1"),
        UplinkConfig(),
    )
    uplink.start()
    garments = _garments("line1", 30, seed=11)
    try:
        for item_id, payload in garments[:10]:  # phase 1: vLLM up
            spool.put(item_id, payload)
        uplink.notify()
        assert wait_until(lambda: len(verdicts) == 10, timeout=120)
        vllm.stop()  # phase 2: vLLM gone
        for item_id, payload in garments[10:20]:
            spool.put(item_id, payload)
        uplink.notify()
        assert wait_until(lambda: len(verdicts) == 20, timeout=120)
        vllm = start_vllm_server(
            tiny_qwen_dir, port=port, served_model_name="tiny", worker_in_engine_process=True
        )
        vllm.wait_ready(300)
        for item_id, payload in garments[20:]:  # phase 3: vLLM back
            spool.put(item_id, payload)
        uplink.notify()
        assert wait_until(lambda: len(verdicts) == 30, timeout=180)
    finally:
        uplink.stop()
        service.stop()
        recorder.stop()
        vllm.stop()
    ids = [item_id for item_id, _ in garments]
    assert all(seen[i] == 1 for i in ids)
    for item_id in ids[10:20]:
        v = verdicts[item_id]
        assert (v["decision"], v["route"], v["priority"], v["final"]) == ("review", "human", "high", False)
        assert v["error"]["code"] == "classifier_failed" and "unavailable" in v["error"]["message"]
        assert v["defects"][0]["type"] == "unknown"
    for item_id in ids[:10] + ids[20:]:
        assert verdicts[item_id]["error"] is None and verdicts[item_id]["defects"][0]["type"] != "unknown"
    assert len(spool) == 0
