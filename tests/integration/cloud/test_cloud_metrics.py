"""The cloud service's Prometheus /metrics, scraped over HTTP while real traffic flows: a vLLM CPU server
(tiny Qwen2.5-VL), a real broker, gRPC streams with good garments and a bad one."""

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud.config import CloudConfig
from seamline.config.models import SeamlineConfig
from seamline.inspection.v1 import inspection_pb2 as pb
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.integration.cloud.test_ingress_bad_input import Stream, garment
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_metrics_move_with_the_traffic(tmp_path, vllm_server, mqtt_broker):
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": f"seamline-metrics{time.time_ns()}"},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}],
            "classifier": {"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
            "metrics_address": "127.0.0.1:0",
            "sweep_interval_s": 0.2,
        }
    )
    service = ServiceThread(config, cloud)
    port = service.service.metrics_port
    try:
        before = _scrape(port)
        assert _total(before, "seamline_cloud_garments_accepted_total") == 0
        stream = Stream(f"127.0.0.1:{service.port}")
        try:
            for _, payload in _garments("line1", 3, seed=31):
                assert (
                    stream.send(pb.UplinkMessage(garment=pb.Garment.FromString(payload))).WhichOneof("kind")
                    == "ack"
                )
            bad = stream.send(pb.UplinkMessage(garment=garment(item_id="bad id")))
            assert bad.WhichOneof("kind") == "refusal"
        finally:
            stream.close()
        assert wait_until(
            lambda: _total(_scrape(port), "seamline_cloud_verdicts_published_total") == 3, timeout=120
        )
        assert wait_until(
            lambda: _total(_scrape(port), "seamline_cloud_oldest_unfinished_age_seconds") == 0, 10
        )
        after = _scrape(port)
    finally:
        service.stop()
    assert _total(after, "seamline_cloud_garments_accepted_total") == 3
    assert _total(after, "seamline_cloud_garments_refused_total", code="REFUSAL_CODE_INVALID") == 1
    assert _total(after, "seamline_cloud_verdicts_total") == 3
    assert _total(after, "seamline_cloud_classify_seconds_count") == 3
    server = vllm_server.openai_base_url
    assert _total(after, "seamline_cloud_classifier_request_seconds_count", server=server) >= 3
    assert _total(after, "seamline_cloud_classifier_errors_total", server=server) == 0
    assert ("seamline_cloud_queue_depth", ()) in after
