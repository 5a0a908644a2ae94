"""`seamline cloud serve` killed with SIGKILL mid-run and restarted: nothing lost, one verdict per garment."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.spool import Spool
from harness.replicas import serving
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port
from tests.integration.cloud.test_cloud_service import _garments
from tests.processes import port_open
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def test_cloud_killed_and_restarted(tmp_path, vllm_server, mqtt_broker):
    port = free_port()
    root = f"seamline-rs{time.time_ns()}"
    config = tmp_path / "seamline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": mqtt_broker.url, "topic_root": root},
                "grpc": {"listen_address": f"127.0.0.1:{port}"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "classifier": {"base_url": vllm_server.openai_base_url, "model": vllm_server.model},
                    "max_garments_in_flight": 2,
                },
            }
        )
    )
    log = open(tmp_path / "cloud.log", "ab")

    def start():
        proc = subprocess.Popen(
            [sys.executable, "-m", "seamline", "cloud", "serve", "--config", str(config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert wait_until(lambda: serving(port), timeout=60), (tmp_path / "cloud.log").read_text()[-2000:]
        return proc

    verdicts = defaultdict(set)

    def on_verdict(topic, payload):
        data = json.loads(payload)
        validate_payload("verdicts", data)
        verdicts[data["item_id"]].add(data["verdict_id"])

    recorder = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"rs-rec-{time.time_ns()}", persistent_session=False
    )
    recorder.subscribe(LineTopics(root, "site1", "line1").verdicts, on_verdict)
    recorder.start()
    assert recorder.wait_connected(10)
    proc = start()
    spool = Spool(tmp_path / "edge" / "spool.db")
    garments = _garments("line1", 40, seed=31)
    for item_id, payload in garments:
        spool.put(item_id, payload)
    uplink = Uplink(
        spool,
        insecure_channel_factory(f"127.0.0.1:{port}", max_message_bytes=8 << 20),
        pb.AgentHello(agent_id="edge-rs", site_id="site1", line_id="line1"),
        UplinkConfig(backoff_max_s=1, ack_timeout_s=10),
    )
    uplink.start()
    try:
        assert wait_until(lambda: len(verdicts) >= 8, timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        published_before = len(verdicts)
        proc = start()
        assert wait_until(lambda: len(verdicts) == 40, timeout=300), len(verdicts)
        assert wait_until(lambda: len(spool) == 0, timeout=60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)  # graceful this time
        assert proc.wait(60) == 0
    finally:
        uplink.stop()
        recorder.stop()
        if proc.poll() is None:
            proc.kill()
    assert published_before < 40
    assert {item for item, _ in garments} == set(verdicts)
    assert all(len(ids) == 1 for ids in verdicts.values()), {i: v for i, v in verdicts.items() if len(v) > 1}


def local_vllm_config(tmp_path: Path, mqtt_url: str, model: Path, port: int, vllm_port: int) -> Path:
    """A configuration: `seamline cloud serve` serves line1 on ``port``, starts vLLM on ``vllm_port``."""
    config = tmp_path / "seamline.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": mqtt_url, "topic_root": f"seamline-lv{time.time_ns()}"},
                "grpc": {"listen_address": f"127.0.0.1:{port}"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "classifier": {"model": "tiny"},
                    "local_vllm": {"model": str(model), "port": vllm_port},
                },
            }
        )
    )
    return config


def test_serve_starts_its_own_local_vllm(tmp_path, tiny_qwen_dir, mqtt_broker):
    """The single-machine default: `cloud.local_vllm` makes `seamline cloud serve` start vLLM itself."""
    port, vllm_port = free_port(), free_port()
    config = local_vllm_config(tmp_path, mqtt_broker.url, tiny_qwen_dir, port, vllm_port)
    log = tmp_path / "cloud.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seamline", "cloud", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    spool = Spool(tmp_path / "edge" / "spool.db")
    uplink = None
    try:
        assert wait_until(lambda: serving(port), timeout=300), log.read_text()[-2000:]
        for item_id, payload in _garments("line1", 3, seed=41):
            spool.put(item_id, payload)
        uplink = Uplink(
            spool,
            insecure_channel_factory(f"127.0.0.1:{port}", max_message_bytes=8 << 20),
            pb.AgentHello(agent_id="edge-lv", site_id="site1", line_id="line1"),
            UplinkConfig(),
        )
        uplink.start()
        assert wait_until(lambda: len(spool) == 0, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if uplink:
            uplink.stop()
        if proc.poll() is None:
            proc.kill()
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "cloud" / "audit.db") as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM garments")]
    assert statuses == ["published"] * 3
    assert not wait_until(
        lambda: port_open(vllm_port), timeout=2
    )  # the local vLLM went down with the service
