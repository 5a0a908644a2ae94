"""Helpers shared by the agent tests: configs, a command recorder on the real broker."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import yaml

from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics, validate_payload


def write_config(
    path: Path,
    *,
    broker_url: str,
    cloud_address: str,
    detector: Path,
    source: dict,
    threshold: float,
    topic_root: str,
    budget_s: float = 1.5,
    line_id: str = "line1",
    metrics_port=None,
    drop_strategy: str = "block",
    buffer_capacity: int = 8,
) -> Path:
    data = {
        "site": {"site_id": "site1", "line_id": line_id, "station_id": "st1"},
        "mqtt": {"url": broker_url, "topic_root": topic_root},
        "grpc": {"cloud_address": cloud_address},
        "storage": {"data_dir": str(path.parent / "data")},
        "edge": {
            "source": source,
            "detector": {"type": "onnxruntime", "model": str(detector), "score_threshold": threshold},
            # belt 1 m/s, diverter at budget + margin metres
            "timing": {
                "belt_speed_m_s": 1.0,
                "distance_to_diverter_m": budget_s + 0.1,
                "actuation_margin_s": 0.1,
            },
            "uplink": {"ack_timeout_s": 3, "backoff_max_s": 1},
            "drop_strategy": drop_strategy,
            "buffer_capacity": buffer_capacity,
            "metrics_port": metrics_port,
        },
    }
    path.write_text(yaml.safe_dump(data))
    return path


class CommandRecorder:
    """Subscribes to a line's commands and verdicts; validates every payload against the contract."""

    def __init__(self, broker_url: str, topics: LineTopics) -> None:
        self.commands: dict[str, list[dict]] = defaultdict(list)
        self.received_at: dict[str, float] = {}  # item id -> wall time its first command arrived
        self.verdicts: list[dict] = []
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        self.bus = MqttBus(
            MqttConfig(url=broker_url), client_id=f"recorder-{time.time_ns()}", persistent_session=False
        )
        self.bus.subscribe(topics.commands, self._on_command)
        self.bus.subscribe(topics.verdicts, self._on_verdict)
        self.bus.subscribe(topics.edge_verdicts, self._on_verdict)
        self.bus.start()
        assert self.bus.wait_connected(10)
        time.sleep(0.3)

    def _on_command(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        try:
            validate_payload("commands", data)
        except Exception as exc:
            self.invalid.append(str(exc))
        with self.lock:
            self.commands[data["item_id"]].append(data)
            self.received_at.setdefault(data["item_id"], time.time())

    def _on_verdict(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        validate_payload("verdicts", data)
        with self.lock:
            self.verdicts.append(data)

    def distinct_commands(self) -> dict[str, set[str]]:
        with self.lock:
            return {item: {c["command_id"] for c in cmds} for item, cmds in self.commands.items()}

    def stop(self) -> None:
        self.bus.stop()
