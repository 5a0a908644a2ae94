"""The one-command demo: broker, cloud service (with its local vLLM), edge agent on the synthetic line.

Each part runs as its own process from the same ``seamline`` commands a deployment uses (``seamline cloud
serve``, ``seamline edge run``), on one generated configuration file; this process only starts them, watches
the line over MQTT like a dashboard, draws the live view and writes the summary. Nothing is mocked: the
broker is Mosquitto (or the embedded amqtt), the detector runs in ONNX Runtime, the classifier in vLLM.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics
from seamline.demo.monitor import LineMonitor, LineStats
from seamline.errors import SeamlineError
from seamline.localbroker import free_port, local_broker

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEMO_MODELS = REPO / "models" / "demo"
SITE, LINE, STATION = "demo", "line1", "station1"
_SEQ = re.compile(r"(\d{6})$")


class DemoError(SeamlineError):
    """The demo could not start or finish."""


@dataclass
class DemoSettings:
    garments: int = 120
    rate_hz: float = 1.0  # what 2 CPU cores sustain with the tiled detector and vLLM sharing them
    views: int = 1
    seed: int = 7  # a synthetic line seed the demo models never trained on (training used 100 and 200)
    out_dir: Path = Path("demo-run")
    detector: Path = DEMO_MODELS / "detector" / "detector.onnx"
    classifier: Path = DEMO_MODELS / "classifier"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    auto_threshold: float | None = None  # routing band overrides (None: the policy's 0.95 / 0.70)
    high_priority_below: float | None = None
    ready_timeout_s: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)


def synthetic_truth(synth: dict[str, Any]):
    """item id -> expected decision, for garments of the edge's synthetic source (index = start + sequence).

    The edge's item ids end in a per-boot sequence number (``edge.sources.base.ItemIds``); the synthetic
    source renders garment ``start_index + sequence``.
    """
    from seamline.synth import SynthConfig, SyntheticLine

    config = SynthConfig(**synth.get("synth", {}))
    line = SyntheticLine(config)
    start = int(synth.get("start_index", 0))

    def truth(item_id: str) -> str | None:
        match = _SEQ.search(item_id)
        return line.garment(start + int(match.group(1))).expected_decision.value if match else None

    return truth


def demo_config(settings: DemoSettings, *, mqtt_url: str, grpc_port: int, vllm_port: int) -> dict[str, Any]:
    """The Seamline configuration the demo's processes share (written to OUT/seamline.yaml)."""
    routing: dict[str, Any] = {}
    if settings.auto_threshold is not None:
        routing["auto_threshold"] = settings.auto_threshold
    if settings.high_priority_below is not None:
        routing["high_priority_below"] = settings.high_priority_below
    return {
        "site": {"site_id": SITE, "line_id": LINE, "station_id": STATION},
        "mqtt": {"url": mqtt_url, "topic_root": "seamline"},
        "grpc": {"cloud_address": f"127.0.0.1:{grpc_port}", "listen_address": f"127.0.0.1:{grpc_port}"},
        "storage": {"data_dir": str((settings.out_dir / "data").resolve())},
        "edge": {
            "source": {"type": "synthetic", "rate_hz": settings.rate_hz, "count": settings.garments,
                       "synth": {"views": settings.views, "seed": settings.seed}},
            "detector": {"type": "onnxruntime", "model": str(settings.detector.resolve()), "providers": ["cpu"], "score_threshold": 0.25,
                         "intra_op_threads": 1},  # vLLM keeps a core busy; one thread avoids contending for it
            "timing": {"belt_speed_m_s": 0.5, "distance_to_diverter_m": 3.0, "actuation_margin_s": 0.3},
            "metrics_port": None,
        },
        "cloud": {
            "classifier": {"model": "seamline-demo-classifier", "max_concurrency": 16, "prompt": {"style": "v1-compact"}},
            "local_vllm": {"model": str(settings.classifier.resolve()), "port": vllm_port, "ready_timeout_s": settings.ready_timeout_s},
            **({"routing": routing} if routing else {}),
        },
    }


class _Process:
    """A child ``seamline`` command whose output goes to a log file, watched for a ready line."""

    def __init__(self, name: str, args: list[str], log_path: Path, ready: str | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self.ready = threading.Event()
        self._pattern = re.compile(ready) if ready else None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seamline", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches only the demo, which stops the children in order
        )
        self._log = log_path.open("wb")
        self._thread = threading.Thread(target=self._pump, name=f"{name}-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._log.write(raw)
            self._log.flush()
            if self._pattern and not self.ready.is_set() and self._pattern.search(raw.decode(errors="replace")):
                self.ready.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
            self.proc.kill()
            code = self.proc.wait()
        self._thread.join(5)
        self._log.close()
        return code

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class DemoResult:
    stats: LineStats
    monitor: LineMonitor  # every garment's verdict and command, for the benchmark's replays
    config: dict[str, Any]


def run_demo(settings: DemoSettings, *, live: bool = True, on_stats=None) -> DemoResult:
    """Run the whole loop once; returns the line statistics (also written to OUT/summary.*) and the traces."""
    from seamline.demo.dashboard import Dashboard

    for path, what in ((settings.detector, "demo detector"), (settings.classifier, "demo classifier")):
        if not path.exists():
            raise DemoError(f"{what} not found at {path}")
    out = settings.out_dir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    broker = local_broker(settings.mqtt_url)
    processes: list[_Process] = []
    bus = None
    try:
        config = demo_config(settings, mqtt_url=broker.url, grpc_port=free_port(), vllm_port=free_port())
        config_path = out / "seamline.yaml"
        config_path.write_text(
            "# Written by `seamline demo`: the configuration its cloud and edge processes ran with.\n"
            + yaml.safe_dump(config, sort_keys=False), encoding="utf-8",
        )
        monitor = LineMonitor(truth=synthetic_truth(config["edge"]["source"]))
        topics = LineTopics("seamline", SITE, LINE)
        bus = MqttBus(MqttConfig(url=broker.url), persistent_session=False)
        monitor.attach(bus, topics.verdicts, topics.commands)
        bus.start()
        if not bus.wait_connected(15):
            raise DemoError(f"cannot connect to the MQTT broker at {broker.url}")

        dashboard = Dashboard(settings, live=live)
        dashboard.phase(f"broker: {broker.kind} at {broker.url}; starting the cloud service and its vLLM (about a minute) ...")
        cloud = _Process("cloud", ["cloud", "serve", "--config", str(config_path)], out / "logs" / "cloud.log", ready=r"cloud service listening")
        processes.append(cloud)
        deadline = time.monotonic() + settings.ready_timeout_s
        while not cloud.ready.wait(0.5):
            if not cloud.alive() or time.monotonic() > deadline:
                raise DemoError(f"the cloud service did not start (log {cloud.log_path}):\n{cloud.tail()}")
            dashboard.tick(monitor.stats())
        dashboard.phase("cloud ready; starting the edge agent on the synthetic line")
        edge = _Process("edge", ["edge", "run", "--config", str(config_path)], out / "logs" / "edge.log")
        processes.append(edge)
        with dashboard:
            while edge.alive():
                time.sleep(0.5)
                stats = monitor.stats()
                dashboard.tick(stats)
                if on_stats:
                    on_stats(stats)
            # The edge leaves once every garment has its command; give the last messages a moment to arrive.
            settle = time.monotonic() + 10
            while monitor.commanded() < settings.garments and time.monotonic() < settle:
                time.sleep(0.2)
            stats = monitor.stats()
            dashboard.tick(stats)
        if edge.proc.returncode != 0:
            raise DemoError(f"the edge agent failed (exit {edge.proc.returncode}, log {edge.log_path}):\n{edge.tail()}")
        write_summary(out, settings, stats)
        return DemoResult(stats, monitor, config)
    finally:
        if bus is not None:
            bus.stop()
        for process in reversed(processes):
            process.stop()
        broker.stop()


def write_summary(out: Path, settings: DemoSettings, stats: LineStats) -> None:
    from seamline.demo.dashboard import summary_markdown

    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()}, "stats": stats.to_dict()}
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(settings, stats), encoding="utf-8")
