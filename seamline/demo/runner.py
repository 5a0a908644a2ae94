"""The one-command demo: broker, cloud service (with its local vLLM), review console, edge agent on the
synthetic line.

Each part runs as its own process from the same ``seamline`` commands a deployment uses (``seamline cloud
serve``, ``seamline review serve``, ``seamline edge run``), on one generated configuration file; this process
only starts them, watches the line over MQTT like a dashboard, draws the live view and writes the summary.
Nothing is mocked: the broker is Mosquitto (or the embedded amqtt), the detector runs in ONNX Runtime, the
classifier in vLLM. Garments routed to people wait in the review console; a simulated reviewer (a bot using
the console's HTTP API, deciding from the synthetic truth) works the queue so the feedback loop and the weekly
report have data, and a person can log in beside it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seamline.children import StopRequested, end_process, start_child
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics
from seamline.demo.dashboard import Dashboard, summary_markdown
from seamline.demo.monitor import LineMonitor, LineStats
from seamline.demo.settings import DemoSettings
from seamline.errors import InputError, SeamlineError
from seamline.localbroker import free_port, local_broker

logger = logging.getLogger(__name__)

SITE, LINE, STATION = "demo", "line1", "station1"
_SEQ = re.compile(r"(\d{6})$")


class DemoError(SeamlineError):
    """The demo could not start or finish."""


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


def demo_config(
    settings: DemoSettings,
    *,
    mqtt_url: str,
    grpc_port: int,
    vllm_port: int,
    review_port: int = 8080,
    mqtt_protocol: str = "5",
) -> dict[str, Any]:
    """The Seamline configuration the demo's processes share (written to OUT/seamline.yaml).

    ``mqtt_protocol``: the broker's MQTT version (``LocalBroker.protocol``; the embedded broker speaks 3.1.1).
    """
    routing: dict[str, Any] = {}
    if settings.auto_threshold is not None:
        routing["auto_threshold"] = settings.auto_threshold
    if settings.high_priority_below is not None:
        routing["high_priority_below"] = settings.high_priority_below
    return {
        "site": {"site_id": SITE, "line_id": LINE, "station_id": STATION},
        "mqtt": {"url": mqtt_url, "topic_root": "seamline", "protocol": mqtt_protocol},
        "grpc": {"cloud_address": f"127.0.0.1:{grpc_port}", "listen_address": f"127.0.0.1:{grpc_port}"},
        "storage": {"data_dir": str((settings.out_dir / "data").resolve())},
        "edge": {
            "source": {
                "type": "synthetic",
                "rate_hz": settings.rate_hz,
                "count": settings.garments,
                "synth": {"views": settings.views, "seed": settings.seed},
            },
            "detector": {
                "type": "onnxruntime",
                "model": str(settings.detector.resolve()),
                "providers": ["cpu"],
                "score_threshold": 0.25,
                "intra_op_threads": 1,
            },  # vLLM keeps a core busy; one thread avoids contending for it
            "timing": {"belt_speed_m_s": 0.5, "distance_to_diverter_m": 3.0, "actuation_margin_s": 0.3},
            "metrics_port": None,
        },
        "cloud": {
            "lines": [{"site_id": SITE, "line_id": LINE}],
            "classifier": {
                "model": "seamline-demo-classifier",
                "max_concurrency": 16,
                "prompt": {"style": "v1-compact"},
            },
            "local_vllm": {
                "model": str(settings.classifier.resolve()),
                "port": vllm_port,
                "ready_timeout_s": settings.ready_timeout_s,
            },
            **({"routing": routing} if routing else {}),
        },
        "review": {"host": "127.0.0.1", "port": review_port},
    }


class _Process:
    """A child ``seamline`` command whose output goes to a log file, watched for a ready line."""

    def __init__(self, name: str, args: list[str], log_path: Path, ready: str | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self.ready = threading.Event()
        self._pattern = re.compile(ready) if ready else None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = start_child(
            [sys.executable, "-m", "seamline", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            # Ctrl-C in the terminal reaches only the demo, which stops the children in order
            start_new_session=True,
        )
        self._log = log_path.open("wb")
        self._thread = threading.Thread(target=self._pump, name=f"{name}-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._log.write(raw)
            self._log.flush()
            if (
                self._pattern
                and not self.ready.is_set()
                and self._pattern.search(raw.decode(errors="replace"))
            ):
                self.ready.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        code = end_process(self.proc, timeout)
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
    for path, what in ((settings.detector, "demo detector"), (settings.classifier, "demo classifier")):
        if not path.exists():
            raise InputError(f"{what} not found at {path}")
    out = settings.out_dir
    (out / "logs").mkdir(parents=True, exist_ok=True)
    broker = local_broker(settings.mqtt_url)
    processes: list[_Process] = []
    bus = None
    bot = None
    try:
        config = demo_config(
            settings,
            mqtt_url=broker.url,
            mqtt_protocol=broker.protocol,
            grpc_port=free_port(),
            vllm_port=free_port(),
            review_port=free_port(),
        )
        config_path = out / "seamline.yaml"
        config_path.write_text(
            "# Written by `seamline demo`: the configuration its cloud and edge processes ran with.\n"
            + yaml.safe_dump(config, sort_keys=False),
            encoding="utf-8",
        )
        monitor = LineMonitor(truth=synthetic_truth(config["edge"]["source"]))
        topics = LineTopics(config["mqtt"]["topic_root"], SITE, LINE)
        bus = MqttBus(MqttConfig(url=broker.url, protocol=broker.protocol), persistent_session=False)
        monitor.attach(bus, [topics.verdicts, topics.edge_verdicts], topics.commands)
        bus.start()
        if not bus.wait_connected(15):
            raise DemoError(f"cannot connect to the MQTT broker at {broker.url}")

        dashboard = Dashboard(settings, live=live)
        dashboard.phase(
            f"broker: {broker.kind} at {broker.url}; "
            "starting the cloud service and its vLLM (about a minute) ..."
        )
        cloud = _Process(
            "cloud",
            ["cloud", "serve", "--config", str(config_path)],
            out / "logs" / "cloud.log",
            ready=r"cloud service listening",
        )
        processes.append(cloud)
        deadline = time.monotonic() + settings.ready_timeout_s
        while not cloud.ready.wait(0.5):
            if not cloud.alive() or time.monotonic() > deadline:
                raise DemoError(f"the cloud service did not start (log {cloud.log_path}):\n{cloud.tail()}")
            dashboard.tick(monitor.stats())
        review_url = None
        if settings.review:
            review_url, bot = _start_review(settings, config, config_path, processes, dashboard)
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
            raise DemoError(
                f"the edge agent failed (exit {edge.proc.returncode}, log {edge.log_path}):\n{edge.tail()}"
            )
        if review_url is not None:
            stats = _finish_review(settings, config_path, monitor, bot, dashboard, review_url)
        write_summary(out, settings, stats)
        if settings.hold and review_url is not None:
            dashboard.phase(
                f"the line has finished; the review console stays at {review_url} until Ctrl-C "
                f"(login in {out / 'review-login.txt'})"
            )
            try:
                while all(p.alive() for p in processes if p.name != "edge"):
                    time.sleep(1)
            except (KeyboardInterrupt, StopRequested):
                pass
        return DemoResult(stats, monitor, config)
    finally:
        if bot is not None:
            bot.stop()
        if bus is not None:
            bus.stop()
        for process in reversed(processes):
            process.stop()
        broker.stop()


def _start_review(
    settings: DemoSettings,
    config: dict[str, Any],
    config_path: Path,
    processes: list[_Process],
    dashboard: Any,
):  # type: ignore[no-untyped-def]
    """Create the demo's reviewer accounts, start ``seamline review serve`` and the simulated reviewer."""
    from seamline.demo.reviewer import SimulatedReviewer, synthetic_labeler

    out = settings.out_dir
    passwords = {"reviewer": secrets.token_urlsafe(9), "simulated": secrets.token_urlsafe(16)}
    for name, password in passwords.items():
        env = dict(os.environ, SEAMLINE_DEMO_PASSWORD=password)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "seamline",
                "review",
                "add-reviewer",
                name,
                "--config",
                str(config_path),
                "--password-env",
                "SEAMLINE_DEMO_PASSWORD",
                # the person's login sees the weekly report and the reviewer accounts too
                "--role",
                "admin" if name == "reviewer" else "reviewer",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 and "exists already" not in done.stderr:
            raise DemoError(f"could not create the demo reviewer {name}: {done.stderr.strip()}")
        if "exists already" in done.stderr:  # a reused output folder: reset the password to this run's
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "seamline",
                    "review",
                    "set-password",
                    name,
                    "--config",
                    str(config_path),
                    "--password-env",
                    "SEAMLINE_DEMO_PASSWORD",
                ],
                capture_output=True,
                env=env,
                timeout=120,
                check=True,
            )
    url = f"http://{config['review']['host']}:{config['review']['port']}"
    (out / "review-login.txt").write_text(
        f"{url}\nreviewer: reviewer\npassword: {passwords['reviewer']}\n", encoding="utf-8"
    )
    review = _Process(
        "review",
        ["review", "serve", "--config", str(config_path)],
        out / "logs" / "review.log",
        ready=r"review console listening",
    )
    processes.append(review)
    if not review.ready.wait(60):
        raise DemoError(f"the review console did not start (log {review.log_path}):\n{review.tail()}")
    bot = None
    if settings.simulated_reviewer:
        bot = SimulatedReviewer(
            url, "simulated", passwords["simulated"], synthetic_labeler(config["edge"]["source"])
        )
        bot.start()
    who = "; a simulated reviewer decides from the synthetic truth" if bot else ""
    dashboard.phase(f"review console at {url} — log in as 'reviewer', password {passwords['reviewer']}{who}")
    return url, bot


def _finish_review(
    settings: DemoSettings, config_path: Path, monitor: LineMonitor, bot: Any, dashboard: Any, url: str
) -> LineStats:
    """Let the simulated reviewer empty the queue, then write the weekly review report into OUT/review/."""
    from seamline.demo.reviewer import wait_for

    stats = monitor.stats()
    routed = stats.routes.get("human", 0)
    if bot is not None:
        dashboard.phase(
            f"line done; the simulated reviewer finishes the queue ({stats.reviewed}/{routed} reviewed)"
        )
        bot.finish()
        wait_for(lambda: monitor.stats().reviewed >= routed or not bot.is_alive(), timeout=60 + 2 * routed)
        bot.stop()
    out = settings.out_dir / "review"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "report",
            "weekly",
            "--config",
            str(config_path),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    stats = monitor.stats()
    review: dict[str, Any] = {
        "console": url,
        "routed_to_people": routed,
        "reviewed": stats.reviewed,
        "simulated_reviewer": bot is not None,
        "bot_errors": bot.errors[:5] if bot else [],
    }
    if done.returncode == 0:
        report = json.loads(done.stdout)
        review.update(
            {
                k: report[k]
                for k in ("week", "total_reviews", "agreement_rate", "garments", "regions", "retrain")
            }
        )
        review["per_class"] = {k: v for k, v in report["per_class"].items() if v["predicted"] or v["actual"]}
        review["report"] = str(out / "report.md")
    else:
        review["report_error"] = done.stderr.strip()[-2000:]
    stats.extra["review"] = review
    return stats


def write_summary(out: Path, settings: DemoSettings, stats: LineStats) -> None:
    record = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()},
        "stats": stats.to_dict(),
    }
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(settings, stats), encoding="utf-8")
