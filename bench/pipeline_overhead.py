"""The pipeline's own overhead at 1, 10 and 50 garments/s: camera to line command, less model compute.

Both models are replaced by constant-time stand-ins that exist ONLY IN THIS BENCH (never shipped, never in a
test of the product's behaviour):

- ``BenchConstantTimeDetector``: an edge ``DetectorRuntime`` that sleeps ``--detect-ms`` and returns two fixed
  candidate regions per view. Its default, 5 ms, is kept small so that the edge's one detection loop can
  keep up at 50 garments/s: the detector's own time is model compute, not overhead.
- ``BenchConstantTimeVllm``: an HTTP server answering the OpenAI chat-completions subset the cloud classifier
  uses. It sleeps ``--classify-ms`` and answers a fixed verdict JSON with token log-probabilities.

Everything between them is the product, in its own processes:
- the edge agent: buffer, crops (JPEG), durable spool, uplink gRPC stream, and the line controller
  (ledger, MQTT command);
- `seamline cloud serve`: validation, crop store, audit DB, the classifier client, routing, MQTT publish;
- the MQTT broker (Mosquitto when installed, else the embedded one).

The garments are 20 synthetic 1280x720 garments rendered once and replayed with new ids, so rendering does not
compete for the cores.

Overhead per garment is the frame-to-command latency minus the detector and classifier times that the
verdict reports (``timings_ms``), as the demo's monitor computes it. The goal (issue 18) is p99 < 25 ms at
50 garments/s on this machine.

Each rate is a fresh edge process (the cloud service stays up); its first ``--warmup`` garments (3), which
open the gRPC stream and warm caches, are left out of the statistics.

Run: .venv/bin/python bench/pipeline_overhead.py [--rates 1,10,50] [--seconds 20] [--min-garments 60]
     [--warmup 3] [--detect-ms 5] [--classify-ms 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.detectors.base import Detections, DetectorRuntime, RawOutputs  # noqa: E402
from edge.detectors.meta import DetectorMeta  # noqa: E402
from edge.sources.base import CapturedGarment, GarmentSource  # noqa: E402
from seamline.clock import utcnow  # noqa: E402

GOAL_P99_MS = 25.0
SITE, LINE, STATION = "bench", "line1", "st1"
ANSWER = {"type": "stain", "severity": "severe", "decision": "reject", "reason": "bench stand-in answer"}


class BenchConstantTimeDetector(DetectorRuntime):
    """BENCH ONLY: sleeps a fixed time and finds two fixed regions per view (real crops follow)."""

    key = "bench-constant-time"

    def __init__(self, delay_s: float) -> None:
        super().__init__(DetectorMeta(version="bench-constant-time@0", input_size=320, labels=("defect",)))
        self.delay_s = delay_s

    def forward(self, batch: np.ndarray) -> RawOutputs:  # pragma: no cover - detect() never calls it
        raise NotImplementedError

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        time.sleep(self.delay_s)
        found = []
        for image in images:
            h, w = image.shape[:2]
            boxes = np.array(
                [[0.2 * w, 0.3 * h, 0.3 * w, 0.45 * h], [0.6 * w, 0.5 * h, 0.72 * w, 0.7 * h]], np.float32
            )
            found.append(Detections(boxes, np.array([0.8, 0.6], np.float32), np.zeros(2, np.int64), 0.8))
        return found


class BenchReplayedLine(GarmentSource):
    """BENCH ONLY: pre-rendered garments replayed at a fixed rate with fresh ids."""

    kind = "bench-replay"

    def __init__(self, views: list[tuple[np.ndarray, ...]], rate_hz: float, count: int, item_ids) -> None:
        super().__init__(item_ids)
        self.views, self.period, self.count = views, 1.0 / rate_hz, count

    def _produce(self):
        next_at = time.monotonic()
        for i in range(self.count):
            if self._stop.is_set():
                return
            wait = next_at - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            next_at += self.period
            views = self.views[i % len(self.views)]
            yield CapturedGarment(
                item_id=self.item_ids.next(),
                views=views,
                camera_ids=tuple(f"cam{j}" for j in range(len(views))),
                captured_at=utcnow(),
                source_ref=f"bench-{i}",
            )


def _answer_tokens(content: str) -> list[dict]:
    """The content in 3-character pieces, each with log-probability -0.001 (a confident model)."""
    return [{"token": content[i : i + 3], "logprob": -0.001} for i in range(0, len(content), 3)]


class BenchConstantTimeVllm(BaseHTTPRequestHandler):
    """BENCH ONLY: the chat-completions subset the cloud classifier calls, in constant time."""

    delay_s = 0.05
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "bench-constant-time", "object": "model"}]})
        else:
            self._send(200, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        time.sleep(self.delay_s)
        content = json.dumps(ANSWER)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "logprobs": {"content": _answer_tokens(content)},
                "finish_reason": "stop",
            }
            for i in range(int(request.get("n", 1)))
        ]
        self._send(200, {"id": "bench", "object": "chat.completion", "choices": choices, "usage": {}})


def serve_stand_in(port: int, delay_ms: float) -> None:
    BenchConstantTimeVllm.delay_s = delay_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", port), BenchConstantTimeVllm)
    server.daemon_threads = True
    print("stand-in listening", flush=True)
    server.serve_forever()


def run_edge(config_path: Path, rate: float, count: int, detect_ms: float) -> None:
    """The real edge agent with the bench's source and detector (as `seamline edge run` drives it)."""
    from edge.agent import EdgeAgent
    from edge.config import EdgeConfig
    from edge.sources.base import ItemIds
    from seamline.config.models import load_config, load_section
    from seamline.config.synth import SynthConfig
    from seamline.logs import setup_logging
    from seamline.synth import SyntheticLine

    config = load_config(config_path)
    edge = load_section(config_path, config, "edge", EdgeConfig)
    setup_logging("WARNING", False)
    line = SyntheticLine(SynthConfig(seed=11))
    views = [tuple(v.image for v in line.garment(i).views) for i in range(20)]
    source = BenchReplayedLine(views, rate, count, ItemIds(LINE, STATION))
    agent = EdgeAgent(
        config, edge, source=source, load_detector=lambda: BenchConstantTimeDetector(detect_ms / 1000)
    )
    try:
        agent.start()
        agent.run()
        agent.drain(timeout=edge.timing.budget_s + 30)
    finally:
        agent.stop()
    print(f"processed {agent.processed}", flush=True)


def _config(out: Path, broker, grpc_port: int, vllm_port: int) -> dict:
    return {
        "site": {"site_id": SITE, "line_id": LINE, "station_id": STATION},
        "mqtt": {"url": broker.url, "topic_root": "seamline", "protocol": broker.protocol},
        "grpc": {"cloud_address": f"127.0.0.1:{grpc_port}", "listen_address": f"127.0.0.1:{grpc_port}"},
        "storage": {"data_dir": str((out / "data").resolve())},
        "logging": {"level": "WARNING"},
        "edge": {
            "source": {"type": "synthetic", "count": 1},  # replaced by the bench's replayed line
            "detector": {"type": "onnxruntime", "model": "unused.onnx"},  # replaced by the stand-in
            "timing": {"belt_speed_m_s": 0.5, "distance_to_diverter_m": 3.0, "actuation_margin_s": 0.3},
            "buffer_capacity": 512,
            "metrics_port": None,
        },
        "cloud": {
            "lines": [{"site_id": SITE, "line_id": LINE}],
            "classifier": {
                "base_url": f"http://127.0.0.1:{vllm_port}/v1",
                "model": "bench-constant-time",
                "max_concurrency": 64,
                "prompt": {"style": "v1-compact"},
            },
        },
    }


def _start(args: list[str], log: Path, ready: str, timeout: float = 120) -> subprocess.Popen:
    handle = log.open("w")
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log.read_text(errors="replace"):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{args[:4]} did not start; its log:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1,10,50", help="garments/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="belt time per rate")
    parser.add_argument("--min-garments", type=int, default=60, help="at least this many per rate")
    parser.add_argument(
        "--warmup", type=int, default=3, help="first garments of each run left out (connections, caches)"
    )
    parser.add_argument("--detect-ms", type=float, default=5.0)
    parser.add_argument("--classify-ms", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=Path(".cache/bench/overhead"))
    args = parser.parse_args()

    import shutil

    from rich.console import Console
    from rich.table import Table

    from seamline.comms.mqtt import MqttBus
    from seamline.config.models import MqttConfig
    from seamline.contract.mqtt import LineTopics
    from seamline.demo.monitor import LineMonitor
    from seamline.demo.runner import write_config
    from seamline.localbroker import free_port, local_broker

    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "logs").mkdir(parents=True)
    broker = local_broker("mqtt://127.0.0.1:1883")
    grpc_port, vllm_port = free_port(), free_port()
    config_path = args.out / "seamline.yaml"
    write_config(config_path, _config(args.out, broker, grpc_port, vllm_port), "the bench's processes")
    me = [sys.executable, str(Path(__file__).resolve())]
    processes = [
        _start(
            [*me, "stand-in", "--port", str(vllm_port), "--classify-ms", str(args.classify_ms)],
            args.out / "logs" / "stand-in.log",
            "stand-in listening",
        )
    ]
    rows = []
    try:
        processes.append(
            _start(
                [sys.executable, "-m", "seamline", "cloud", "serve", "--config", str(config_path)],
                args.out / "logs" / "cloud.log",
                "cloud service listening",
            )
        )
        topics = LineTopics("seamline", SITE, LINE)
        for rate in [float(r) for r in args.rates.split(",")]:
            monitor = LineMonitor()
            bus = MqttBus(MqttConfig(url=broker.url, protocol=broker.protocol), persistent_session=False)
            monitor.attach(bus, [topics.verdicts, topics.edge_verdicts], topics.commands)
            bus.start()
            bus.wait_connected(15)
            count = max(args.min_garments, int(rate * args.seconds))
            log = args.out / "logs" / f"edge-{rate:g}.log"
            with log.open("w") as handle:
                edge = subprocess.run(
                    [*me, "edge", "--config", str(config_path), "--rate", str(rate), "--count", str(count),
                     "--detect-ms", str(args.detect_ms)],
                    stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, timeout=args.seconds * 4 + 120,
                )  # fmt: skip
            settle = time.monotonic() + 10
            while monitor.commanded() < count and time.monotonic() < settle:
                time.sleep(0.2)
            bus.stop()
            if edge.returncode != 0:
                raise SystemExit(f"the bench edge failed at {rate}/s; log {log}:\n{log.read_text()[-3000:]}")
            warm = set(sorted(monitor.item_ids())[: args.warmup])  # ids sort by capture time
            stats = monitor.stats(lambda trace, warm=warm: trace.item_id not in warm)
            rows.append({"rate": rate, "count": count, "warmup": len(warm), **stats.to_dict()})
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU"
    table = Table(
        title=f"Pipeline overhead outside model compute ({machine}); stand-in models: detector "
        f"{args.detect_ms:g} ms, classifier {args.classify_ms:g} ms per request (bench only)"
    )
    for column in ("belt", "garments", "measured", "sustained/s", "latency p50", "overhead p50",
                   "overhead p90", "overhead p99", "deadline misses", "goal p99 < 25 ms"):  # fmt: skip
        table.add_column(column)
    for r in rows:
        over, lat = r["overhead_ms"], r["latency_ms"]
        table.add_row(
            f"{r['rate']:g}/s",
            str(r["count"]),
            str(r["garments"]),
            f"{r['garments_per_s']:.1f}",
            f"{lat['p50']:.1f} ms",
            f"{over['p50']:.1f} ms",
            f"{over['p90']:.1f} ms",
            f"{over['p99']:.1f} ms",
            str(r["deadline_misses"]),
            "met" if over["p99"] is not None and over["p99"] < GOAL_P99_MS else "NOT MET",
        )
    Console(width=160).print(table)
    (args.out / "overhead.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("stand-in", "edge"):
        role = sys.argv.pop(1)
        p = argparse.ArgumentParser()
        if role == "stand-in":
            p.add_argument("--port", type=int, required=True)
            p.add_argument("--classify-ms", type=float, required=True)
            a = p.parse_args()
            serve_stand_in(a.port, a.classify_ms)
        else:
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("--rate", type=float, required=True)
            p.add_argument("--count", type=int, required=True)
            p.add_argument("--detect-ms", type=float, required=True)
            a = p.parse_args()
            run_edge(a.config, a.rate, a.count, a.detect_ms)
    else:
        main()
