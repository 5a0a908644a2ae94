"""Garments the edge passes itself (nothing detected) are sampled for audit: their views, downscaled, reach
review through the real uplink and cloud service, blind and at low priority; the edge's pass stands (one line
command, no cloud verdict); a reviewer's finding counts as a missed defect per 1,000 passed garments."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import yaml

from cloud.config import CloudConfig
from cloud.review.decision import CropLabel, HumanDecision, MissedDefect
from cloud.review.queue import ReviewQueue
from cloud.review.report import iso_week, week_label, weekly_report
from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.config.models import SeamlineConfig, load_config, load_section
from seamline.config.taxonomy import default_taxonomy
from seamline.contract.mqtt import LineTopics
from seamline.imaging import decode_image
from seamline.localbroker import free_port
from seamline.sampling import sampled
from tests.integration.cloud.test_cloud_service import ServiceThread
from tests.integration.edge.agent_harness import CommandRecorder, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHARE = 0.5
GARMENTS = 16


def test_passed_garments_sampled_for_audit_reach_review_with_their_views(
    tmp_path, mqtt_broker, tiny_onnx_detector
):
    root = f"seamline-passed{time.time_ns()}"
    cloud = ServiceThread(
        SeamlineConfig.model_validate(
            {
                "mqtt": {"url": mqtt_broker.url, "topic_root": root},
                "grpc": {"listen_address": "127.0.0.1:0"},
                "storage": {"data_dir": str(tmp_path / "cloud")},
            }
        ),
        # nothing is classified for these: no vLLM listens
        CloudConfig.model_validate(
            {
                "lines": [{"site_id": "site1", "line_id": "line1"}],
                "classifier": {
                    "base_url": f"http://127.0.0.1:{free_port()}/v1",
                    "retries": 0,
                    "timeout_s": 2,
                },
            }
        ),
    )
    (tmp_path / "edge").mkdir()
    path = write_config(
        tmp_path / "edge" / "seamline.yaml",
        broker_url=mqtt_broker.url,
        cloud_address=f"127.0.0.1:{cloud.port}",
        detector=tiny_onnx_detector,
        source={"type": "synthetic", "count": GARMENTS, "synth": {"width": 640, "height": 360}},
        threshold=1.0,  # nothing is found: every garment passes at the edge
        topic_root=root,
    )
    data = yaml.safe_load(path.read_text())
    data["edge"]["audit"] = {"passed_share": SHARE, "view_max_side": 320}  # 640x360 views -> 320x180
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    recorder = CommandRecorder(mqtt_broker.url, LineTopics(root, "site1", "line1"))
    audit = cloud.service.audit
    try:
        agent.start()
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        runner.join(120)
        assert agent.drain(60)
        ids = sorted(recorder.commands)
        expected = {i for i in ids if sampled(i, SHARE, "passed")}
        assert wait_until(lambda: {q["item_id"] for q in audit.review_queue(limit=100)} == expected, 30)
        sent = agent.metrics.passed_audit_samples._value.get()
    finally:
        agent.stop()
        cloud.stop()
        recorder.stop()
    assert len(ids) == GARMENTS and 0 < len(expected) < GARMENTS and sent == len(expected)
    for item_id in ids:  # the edge's pass stands: one command each, no cloud verdict
        (command,) = recorder.commands[item_id]
        assert (command["action"], command["cause"]) == ("pass", "no_detection")
    assert not [v for v in recorder.verdicts if v["source"] != "edge"]

    queue = ReviewQueue(audit.engine, default_taxonomy())
    for item_id in expected:
        garment = audit.garment(item_id)
        assert garment["purpose"] == "audit_passed" and garment["status"] == "published"
        (view,) = garment["views"]
        (crop,) = garment["crops"]  # the whole view, downscaled to 320 px
        assert (
            crop["box"] == crop["crop_box"] == [0, 0, view[1], view[2]] and crop["detector_label"] == "view"
        )
        assert max(crop["width"], crop["height"]) == 320
        image = decode_image(cloud.service.crop_store.get(crop["uri"]))
        assert image.shape[:2] == (crop["height"], crop["width"])

    first, *rest = sorted(expected)
    item, _ = queue.take_next("ann")
    assert item.kind == "passed_audit" and item.blind and item.priority == "low"
    found = HumanDecision(
        decision="reject",
        crops=[CropLabel(crop_id="view0", type="normal", severity="none")],
        missed=[MissedDefect(view_index=0, box=(100, 100, 180, 160), type="hole", severity="moderate")],
    )
    clean = HumanDecision(decision="pass", crops=[CropLabel(crop_id="view0", type="normal", severity="none")])
    queue.decide("ann", item.item_id, found)
    while (item := queue.take_next("ann")[0]) is not None:
        queue.decide("ann", item.item_id, clean)
    week = weekly_report(audit.engine, iso_week(week_label(datetime.now(UTC))), default_taxonomy())
    missed = week["missed_defects"]
    assert (missed["passed_samples_decided"], missed["with_defect"]) == (len(expected), 1)
    assert missed["per_1000"] == pytest.approx(1000 / len(expected), abs=0.01)
    low, high = missed["per_1000_interval_95"]
    assert 0 < low < missed["per_1000"] < high <= 1000
