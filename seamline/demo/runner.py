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
from dataclasses import dataclass, field
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
_BOOT_SEQ = re.compile(r"-([0-9a-f]{4})(\d{6})$")  # ItemIds: <boot tag><sequence>


class DemoError(SeamlineError):
    """The demo could not start or finish."""


class GarmentIndex:
    """item id -> the synthetic garment it shows, over one or more runs of the edge on the same line.

    The edge's item ids end in a per-boot tag and sequence number (``edge.sources.base.ItemIds``); its
    synthetic source renders garment ``start_index + sequence``. A run after the first (``--learn``'s second
    run) starts further on: ``next_run`` pins the boots seen so far to their start and sets the next one's.
    """

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self._starts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, item_id: str) -> int | None:
        match = _BOOT_SEQ.search(item_id)
        if match is None:
            return None
        with self._lock:
            return self._starts.get(match.group(1), self.start) + int(match.group(2))

    def next_run(self, seen: list[str], start: int) -> None:
        with self._lock:
            for item_id in seen:
                if match := _BOOT_SEQ.search(item_id):
                    self._starts.setdefault(match.group(1), self.start)
            self.start = start


def synthetic_truth(synth: dict[str, Any], index: GarmentIndex | None = None):
    """item id -> expected decision, for garments of the edge's synthetic source (``GarmentIndex``)."""
    from seamline.synth import SynthConfig, SyntheticLine

    config = SynthConfig(**synth.get("synth", {}))
    line = SyntheticLine(config)
    index = index or GarmentIndex(int(synth.get("start_index", 0)))

    def truth(item_id: str) -> str | None:
        found = index(item_id)
        return None if found is None else line.garment(found).expected_decision.value

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
    config = {
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
    if settings.learn:
        from seamline.demo.learning import apply_learning

        apply_learning(settings, config)
    return config


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


@dataclass
class DemoRun:
    """What one demo run has started and watches; the learning cycle (seamline/demo/learning.py) reuses it."""

    settings: DemoSettings
    config: dict[str, Any]
    config_path: Path
    bus: MqttBus
    monitor: LineMonitor
    index: GarmentIndex
    dashboard: Dashboard
    processes: list[_Process]
    passwords: dict[str, str] = field(default_factory=dict)
    review_url: str | None = None
    bot: Any = None

    def start(self, name: str, args: list[str], ready: str | None = None) -> _Process:
        process = _Process(name, args, self.settings.out_dir / "logs" / f"{name}.log", ready=ready)
        self.processes.append(process)
        return process

    def run_line(self, config_path: Path, on_stats=None, select=None) -> LineStats:  # type: ignore[no-untyped-def]
        """Start the edge agent on ``config_path``; show the line until every garment has its command."""
        edge = self.start("edge", ["edge", "run", "--config", str(config_path)])
        with self.dashboard:
            while edge.alive():
                time.sleep(0.5)
                stats = self.monitor.stats(select)
                self.dashboard.tick(stats)
                if on_stats:
                    on_stats(stats)
            # The edge leaves once every garment has its command; give the last messages a moment to arrive.
            settle = time.monotonic() + 10
            while self.monitor.stats(select).garments < self.settings.garments and time.monotonic() < settle:
                time.sleep(0.2)
            stats = self.monitor.stats(select)
            self.dashboard.tick(stats)
        self.processes.remove(edge)
        code = edge.stop()
        if code != 0:
            raise DemoError(f"the edge agent failed (exit {code}, log {edge.log_path}):\n{edge.tail()}")
        return stats


def run_demo(settings: DemoSettings, *, live: bool = True, on_stats=None) -> DemoResult:
    """Run the whole loop once (``settings.learn``: and one learning cycle after it); returns the line
    statistics (also written to OUT/summary.*) and the traces."""
    for path, what in ((settings.detector, "demo detector"), (settings.classifier, "demo classifier")):
        if not path.exists():
            raise InputError(f"{what} not found at {path}")
    out = settings.out_dir
    if settings.learn:
        from seamline.demo.learning import fresh_data

        fresh_data(settings)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    broker = local_broker(settings.mqtt_url)
    processes: list[_Process] = []
    bus = None
    run = None
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
        write_config(config_path, config)
        index = GarmentIndex(int(config["edge"]["source"].get("start_index", 0)))
        monitor = LineMonitor(truth=synthetic_truth(config["edge"]["source"], index))
        topics = LineTopics(config["mqtt"]["topic_root"], SITE, LINE)
        bus = MqttBus(MqttConfig(url=broker.url, protocol=broker.protocol), persistent_session=False)
        monitor.attach(bus, [topics.verdicts, topics.edge_verdicts], topics.commands)
        dashboard = Dashboard(settings, live=live)
        run = DemoRun(settings, config, config_path, bus, monitor, index, dashboard, processes)
        if settings.learn:
            from seamline.demo.learning import prepare

            prepare(run)
        bus.start()
        if not bus.wait_connected(15):
            raise DemoError(f"cannot connect to the MQTT broker at {broker.url}")

        dashboard.phase(
            f"broker: {broker.kind} at {broker.url}; "
            "starting the cloud service and its vLLM (about a minute) ..."
        )
        cloud = run.start(
            "cloud", ["cloud", "serve", "--config", str(config_path)], ready=r"cloud service listening"
        )
        deadline = time.monotonic() + settings.ready_timeout_s
        while not cloud.ready.wait(0.5):
            if not cloud.alive() or time.monotonic() > deadline:
                raise DemoError(f"the cloud service did not start (log {cloud.log_path}):\n{cloud.tail()}")
            dashboard.tick(monitor.stats())
        if settings.review:
            start_review(run)
        dashboard.phase("cloud ready; starting the edge agent on the synthetic line")
        stats = run.run_line(config_path, on_stats)
        if run.review_url is not None:
            stats = finish_review(run, report_dir=out / "review")
        if settings.learn:
            from seamline.demo.learning import learning_cycle

            stats.extra["learning"] = learning_cycle(run)
        write_summary(out, settings, stats)
        if settings.hold and run.review_url is not None:
            dashboard.phase(
                f"the line has finished; the review console stays at {run.review_url} until Ctrl-C "
                f"(login in {out / 'review-login.txt'})"
            )
            try:
                while all(p.alive() for p in processes):
                    time.sleep(1)
            except (KeyboardInterrupt, StopRequested):
                pass
        return DemoResult(stats, monitor, config)
    finally:
        if run is not None and run.bot is not None:
            run.bot.stop()
        if bus is not None:
            bus.stop()
        for process in reversed(processes):
            process.stop()
        broker.stop()


def write_config(path: Path, config: dict[str, Any], what: str = "its cloud and edge processes") -> None:
    path.write_text(
        f"# Written by `seamline demo`: the configuration {what} ran with.\n"
        + yaml.safe_dump(config, sort_keys=False),
        encoding="utf-8",
    )


def start_review(run: DemoRun) -> None:
    """Create the demo's reviewer accounts, start ``seamline review serve`` and the simulated reviewer."""
    settings, config, config_path = run.settings, run.config, run.config_path
    out = settings.out_dir
    run.passwords = {"reviewer": secrets.token_urlsafe(9), "simulated": secrets.token_urlsafe(16)}
    for name, password in run.passwords.items():
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
        f"{url}\nreviewer: reviewer\npassword: {run.passwords['reviewer']}\n", encoding="utf-8"
    )
    review = run.start(
        "review", ["review", "serve", "--config", str(config_path)], ready=r"review console listening"
    )
    if not review.ready.wait(60):
        raise DemoError(f"the review console did not start (log {review.log_path}):\n{review.tail()}")
    run.review_url = url
    start_reviewer_bot(run)
    who = "; a simulated reviewer decides from the synthetic truth" if run.bot else ""
    run.dashboard.phase(
        f"review console at {url} — log in as 'reviewer', password {run.passwords['reviewer']}{who}"
    )


def start_reviewer_bot(run: DemoRun) -> None:
    """(Re)start the simulated reviewer on the console, if the demo has one."""
    from seamline.demo.reviewer import SimulatedReviewer, synthetic_labeler

    if not run.settings.simulated_reviewer or run.review_url is None:
        return
    run.bot = SimulatedReviewer(
        run.review_url,
        "simulated",
        run.passwords["simulated"],
        synthetic_labeler(run.config["edge"]["source"], run.index),
    )
    run.bot.start()


def finish_review(run: DemoRun, *, report_dir: Path | None, select=None) -> LineStats:  # type: ignore[no-untyped-def]
    """Let the simulated reviewer empty the queue (routed garments and audit samples), then write the weekly
    review report into ``report_dir`` (None: no report)."""
    from seamline.demo.reviewer import wait_for

    monitor, bot = run.monitor, run.bot
    stats = monitor.stats(select)
    routed = stats.routes.get("human", 0)
    if bot is not None:
        run.dashboard.phase(
            f"line done; the simulated reviewer finishes the queue ({routed} garments routed to people, "
            f"{stats.reviewed} reviewed so far, audit samples included)"
        )
        bot.finish()
        wait_for(lambda: not bot.is_alive(), timeout=60 + 3 * stats.garments)
        bot.stop()
        # the reviewers' verdicts reach the line over MQTT a moment after the console took them
        wait_for(lambda: monitor.stats(select).reviewed >= routed, timeout=15)
    stats = monitor.stats(select)
    review: dict[str, Any] = {
        "console": run.review_url,
        "routed_to_people": routed,
        "reviewed": stats.reviewed,
        "decided_by_bot": bot.decided if bot else None,
        "simulated_reviewer": bot is not None,
        "bot_errors": bot.errors[:5] if bot else [],
    }
    stats.extra["review"] = review
    if report_dir is None:
        return stats
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "report",
            "weekly",
            "--config",
            str(run.config_path),
            "--out",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode == 0:
        report = json.loads(done.stdout)
        review.update(
            {
                k: report[k]
                for k in ("week", "total_reviews", "agreement_rate", "garments", "regions", "retrain")
            }
        )
        review["per_class"] = {k: v for k, v in report["per_class"].items() if v["predicted"] or v["actual"]}
        review["report"] = str(report_dir / "report.md")
    else:
        review["report_error"] = done.stderr.strip()[-2000:]
    return stats


def write_summary(out: Path, settings: DemoSettings, stats: LineStats) -> None:
    record = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()},
        "stats": stats.to_dict(),
    }
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(settings, stats), encoding="utf-8")
