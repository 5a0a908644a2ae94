"""The cloud service serves the lines its configuration names.

A real service (gRPC on a free port, a real broker, a classifier endpoint that is down) refuses any other
line's edge agent, and nothing is published on that line's topics.
"""

import json
import time

import grpc
import pytest
import yaml

from cloud.config import CloudConfig
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, SeamlineConfig
from seamline.contract.mqtt import LineTopics
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port
from tests.integration.cli.test_validate_config import _run
from tests.integration.cloud.test_cloud_service import ServiceThread
from tests.integration.cloud.test_ingress_bad_input import Stream, garment
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_hello_for_a_line_not_served_is_refused_and_nothing_goes_out_on_its_topics(tmp_path, mqtt_broker):
    root = f"seamline-lines{time.time_ns()}"
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": root},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data")},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "site1", "line_id": "line1"}, {"site_id": "site2", "line_id": "line1"}],
            # no classifier is listening: a served garment still gets a verdict (review, with the error)
            "classifier": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "retries": 0, "timeout_s": 5},
        }
    )
    published: dict[str, list[dict]] = {}
    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"lines-rec-{time.time_ns()}", persistent_session=False
    )
    recorder.subscribe(f"{root}/#", lambda topic, payload: published.setdefault(topic, []).append(payload))
    recorder.start()
    assert recorder.wait_connected(10)
    service = ServiceThread(config, cloud)
    address = f"127.0.0.1:{service.port}"
    try:
        for site_id, line_id in (("site1", "line2"), ("site9", "line1"), ("site2", "line2")):
            stream = Stream(address, hello=None)
            try:
                with pytest.raises(grpc.RpcError) as err:
                    stream.send(
                        pb.UplinkMessage(hello=pb.AgentHello(agent_id="x", site_id=site_id, line_id=line_id))
                    )
            finally:
                stream.close()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert err.value.details() == (
                f"line {site_id}/{line_id} is not served by this cloud service "
                "(it serves the lines in its configuration's cloud.lines)"
            )
        served = Stream(address, hello=pb.AgentHello(agent_id="edge-1", site_id="site1", line_id="line1"))
        try:
            answer = served.send(pb.UplinkMessage(garment=garment(item_id="served-1")))
        finally:
            served.close()
        assert answer.WhichOneof("kind") == "ack"
        verdicts = LineTopics(root, "site1", "line1").verdicts
        assert wait_until(lambda: verdicts in published, timeout=60)
        stored = service.service.audit.counts()
    finally:
        service.stop()
        time.sleep(0.5)  # let anything stray arrive
        recorder.stop()
    assert json.loads(published[verdicts][0])["item_id"] == "served-1"
    line_topics = [t for t in published if not t.startswith(f"{root}/_cloud/")]
    assert all(t.startswith(f"{root}/site1/line1/") for t in line_topics), line_topics
    assert sum(stored.values()) == 1  # the served garment, and only it


def test_serve_without_lines_is_a_configuration_error(tmp_path):
    path = tmp_path / "seamline.yaml"
    path.write_text(
        yaml.safe_dump({"storage": {"data_dir": str(tmp_path)}, "cloud": {"max_garments_in_flight": 2}})
    )
    result = _run("cloud", "serve", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "cloud.lines names no line" in result.stderr


@pytest.mark.parametrize(
    "lines, message",
    [
        ([{"site_id": "Site 1", "line_id": "line1"}], "site_id 'Site 1' must be 1-64 characters"),
        ([{"site_id": "site1"}], "line_id"),
        ([{"site_id": "site1", "line_id": "line1"}] * 2, "site1/line1 is listed twice"),
    ],
)
def test_lines_are_checked_like_the_edge_ids(lines, message):
    with pytest.raises(ValueError, match=message):
        CloudConfig.model_validate({"lines": lines})
