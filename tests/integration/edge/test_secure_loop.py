"""The whole loop over secured wires: edge -> cloud over mutual TLS, cloud -> broker -> edge -> PLC over MQTT
with TLS and a password per role, against the shipped broker configuration.

Real parts throughout: the edge agent (synthetic line, tiny detector in ONNX Runtime) under ``edge-line1``
with its client certificate, the cloud service under ``seamline-cloud`` with its server certificate and the
site CA, Mosquitto from deploy/mosquitto/production.conf, a PLC subscriber under ``plc-line1``. No classifier
listens, so every garment's verdict is "review" (high priority, with the error), published in time: each
garment gets exactly one ``divert_review`` command caused by the cloud's verdict, not by the fail-safe.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from cloud.config import CloudConfig
from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from seamline.config.models import SeamlineConfig, load_config, load_section
from seamline.contract.mqtt import LineTopics
from seamline.localbroker import free_port
from tests.fixtures.pki import SitePki
from tests.fixtures.site_broker import ROOT, SITE
from tests.integration.cloud.test_cloud_service import ServiceThread
from tests.integration.edge.agent_harness import write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _mqtt(site_broker, user: str) -> dict:  # type: ignore[no-untyped-def]
    return {
        "url": f"mqtts://127.0.0.1:{site_broker.port}",
        "topic_root": ROOT,
        "username": user,
        "password": {"file": str(site_broker.password_file(user))},
        "tls": {"ca_file": str(site_broker.ca_file)},
        "protocol": "5",
    }


def test_edge_cloud_broker_plc_over_tls_with_authentication(tmp_path, site_broker, tiny_onnx_detector):
    pki = SitePki.make(tmp_path / "pki")
    server_cert, server_key = pki.server()
    edge_cert, edge_key = pki.edge("edge-line1")
    cloud = ServiceThread(
        SeamlineConfig.model_validate(
            {
                "mqtt": _mqtt(site_broker, "seamline-cloud"),
                "grpc": {
                    "listen_address": "127.0.0.1:0",
                    "tls": {"cert_file": server_cert, "key_file": server_key, "ca_file": pki.ca_file},
                },
                "storage": {"data_dir": str(tmp_path / "cloud")},
            }
        ),
        CloudConfig.model_validate(
            {
                "lines": [{"site_id": SITE, "line_id": "line1"}],
                "classifier": {
                    "base_url": f"http://127.0.0.1:{free_port()}/v1",
                    "retries": 0,
                    "timeout_s": 2,
                },
            }
        ),
    )
    commands: dict[str, list[dict]] = {}
    lock = threading.Lock()
    plc = site_broker.bus("plc-line1")

    def on_command(topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        with lock:
            commands.setdefault(data["item_id"], []).append(data)

    plc.subscribe(LineTopics(ROOT, SITE, "line1").commands, on_command)
    plc.start()
    assert plc.wait_connected(10), plc.last_error

    (tmp_path / "edge").mkdir()
    path = write_config(
        tmp_path / "edge" / "seamline.yaml",
        broker_url="mqtt://127.0.0.1:1",  # replaced below
        cloud_address=f"127.0.0.1:{cloud.port}",
        detector=tiny_onnx_detector,
        source={"type": "synthetic", "rate_hz": 2.0, "count": 6, "synth": {"width": 640, "height": 360}},
        threshold=0.0,  # every garment has candidates: every one goes to the cloud
        topic_root=ROOT,
        budget_s=8.0,
    )
    data = yaml.safe_load(path.read_text())
    data["mqtt"] = _mqtt(site_broker, "edge-line1")
    data["grpc"]["tls"] = {
        "ca_file": str(pki.ca_file),
        "cert_file": str(edge_cert),
        "key_file": str(edge_key),
    }
    data["edge"]["agent_id"] = "edge-line1"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    agent = EdgeAgent(config, load_section(path, config, "edge", EdgeConfig))
    try:
        agent.start()
        agent.run()
        assert agent.drain(60), agent.ledger.counts()
        assert wait_until(lambda: len(commands) == 6, timeout=30), commands
        time.sleep(0.5)
        published = cloud.service.audit.counts()
    finally:
        agent.stop()
        cloud.stop()
        plc.stop()
    assert published == {"published": 6}
    assert all(len(c) == 1 for c in commands.values())
    for (command,) in commands.values():
        assert (command["action"], command["cause"]) == ("divert_review", "verdict"), command
        assert command["verdict_id"]
