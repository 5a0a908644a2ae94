"""The cloud service on real parts: vLLM CPU server (tiny Qwen2.5-VL), real broker, gRPC on a free port,
four edge uplinks streaming 200 garments at once."""

import asyncio
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.config import CloudConfig
from cloud.routing.replay import replay
from cloud.service import CloudService
from edge.crops import Crop
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.convert import garment_message
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.imaging import encode_jpeg
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.synth import SynthConfig, SyntheticLine
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
LINES = ("line1", "line2", "line3", "line4")


class ServiceThread:
    """The cloud service in its own event loop, as `seamline cloud serve` runs it."""

    def __init__(self, config: SeamlineConfig, cloud: CloudConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = CloudService(config, cloud)
        self.port = asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(grace=5), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _garments(line_id: str, count: int, seed: int) -> list[tuple[str, bytes]]:
    line = SyntheticLine(SynthConfig(seed=seed, defect_free_share=0.0))
    out = []
    for i in range(count):
        g = line.garment(i)
        image = np.ascontiguousarray(g.views[0].image)
        d = next((d for d in g.defects if d.view_index == 0), None)
        box = d.box if d else (100.0, 100.0, 160.0, 160.0)
        x1, y1, x2, y2 = (int(v) for v in box)
        crop_box = (max(0, x1 - 24), max(0, y1 - 24), min(1280, x2 + 24), min(720, y2 + 24))
        jpeg = encode_jpeg(np.ascontiguousarray(image[crop_box[1] : crop_box[3], crop_box[0] : crop_box[2]]))
        crop = Crop("v0-c0", 0, tuple(float(v) for v in box), crop_box, 0.8, "defect", jpeg)
        now = datetime.now(UTC)
        item_id = f"{line_id}-svc-{seed}-{i:04d}"
        message = garment_message(
            item_id=item_id,
            site_id="site1",
            line_id=line_id,
            station_id="st1",
            captured_at=now,
            deadline_at=now + timedelta(seconds=30),
            view_sizes=[(720, 1280)],
            camera_ids=["top"],
            crops=[crop],
            detector_version="tiny@test",
        )
        out.append((item_id, message.SerializeToString()))
    return out


def test_200_garments_from_4_edges_all_acked_classified_routed_published(tmp_path, vllm_server, mqtt_broker):
    root = f"seamline-svc{time.time_ns()}"
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": root},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": line_id} for line_id in LINES],
            "classifier": {"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
            "max_garments_in_flight": 16,
        }
    )
    verdicts: dict[str, list[dict]] = defaultdict(list)
    invalid = []

    def on_verdict(topic, payload):
        data = json.loads(payload)
        try:
            validate_payload("verdicts", data)
        except Exception as exc:
            invalid.append(str(exc))
        verdicts[data["item_id"]].append(data)

    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"svc-rec-{time.time_ns()}", persistent_session=False
    )
    for line_id in LINES:
        recorder.subscribe(LineTopics(root, "site1", line_id).verdicts, on_verdict)
    recorder.start()
    assert recorder.wait_connected(10)
    service = ServiceThread(config, cloud)
    uplinks, spools = [], []
    try:
        for n, line_id in enumerate(LINES):
            spool = Spool(tmp_path / f"edge{n}" / "spool.db")
            for item_id, payload in _garments(line_id, 50, seed=n):
                spool.put(item_id, payload)
            uplink = Uplink(
                spool,
                insecure_channel_factory(f"127.0.0.1:{service.port}", max_message_bytes=8 << 20),
                pb.AgentHello(
                    agent_id=f"edge-{line_id}", site_id="site1", line_id=line_id, contract_version="v1"
                ),
                UplinkConfig(ack_timeout_s=30),
            )
            uplink.start()
            spools.append(spool)
            uplinks.append(uplink)
        assert wait_until(lambda: all(len(s) == 0 for s in spools), timeout=120)  # every garment acked
        assert wait_until(lambda: len(verdicts) == 200, timeout=600), len(verdicts)
        assert wait_until(lambda: service.service.audit.counts().get("published") == 200, timeout=30)
        queue = service.service.audit.review_queue(limit=500)
    finally:
        for uplink in uplinks:
            uplink.stop()
        service.stop()
        recorder.stop()
    assert not invalid
    assert all(len({v["verdict_id"] for v in vs}) == 1 for vs in verdicts.values())
    human = [vs[0] for vs in verdicts.values() if vs[0]["route"] == "human"]
    assert len(queue) == len(human)
    assert [q["priority_rank"] for q in queue] == sorted(q["priority_rank"] for q in queue)
    for v in (vs[0] for vs in verdicts.values()):
        assert v["models"]["prompt"] == "v3-fewshot.1@en" and v["models"]["policy"] == "p1"
        assert v["defects"][0]["scores"]["detector"] == pytest.approx(0.8)
        assert v["route"] == "human" or v["decision"] in ("pass", "reject")
    # Every verdict carries what the policy used: replaying it under the same settings decides the same way
    # (the threshold simulation in the end-to-end benchmark rests on this).
    policy = service.service.policy
    for v in (vs[0] for vs in verdicts.values()):
        again = replay(v, policy)
        assert (again.decision.value, again.route.value, again.priority.value) == (
            v["decision"],
            v["route"],
            v["priority"],
        )
        assert again.confidence == pytest.approx(v["confidence"], abs=1e-5)
