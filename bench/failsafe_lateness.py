"""Fail-safe lateness under load: how long after ``deadline_at`` the divert goes out, the machine saturated.

``deadline_at`` is the moment the PLC needs the command: the garment reaches the diverter an actuation margin
later. A divert handed over after ``deadline_at + actuation_margin_s`` comes too late to move the diverter.

Run: .venv/bin/python bench/failsafe_lateness.py [--garments 150] [--rate 20] [--budget 1.0] [--burners 4]

Load, the same for every strategy: ``--burners`` processes spinning (default two per core), and in this
process the agent's own work -- a detection thread running the demo detector in ONNX Runtime (2x2 tiles) on
synthetic 1280x720 frames, then crops, the ``Garment`` message and a spool write, garment after garment; a
source thread registering each garment in the ledger (SQLite, synchronous=FULL) as it is captured. No verdict
ever comes (a cloud outage), so every garment gets its fail-safe divert through the real ``LineController``
and ``MqttCommandSink`` on a real broker.

Strategies, run one after the other (``--rounds`` times, interleaved), each over a fresh line and ledger; all
fire through the same ``LineController.fail_safe`` (ledger commit, then MQTT):
  * ticker (before): the agent's former ``deadlines`` thread, kept here as it was -- settle what is overdue,
    ask the ledger for the next deadline, sleep until then (at most 0.25 s, at least 5 ms), repeat;
  * between detections: the fail-safe checked by the detection loop after each garment (a loop-driven design);
  * FailSafeTimer, normal priority: a heap of deadlines on a thread of its own that sleeps until exactly the
    next one;
  * FailSafeTimer (now): the same at real-time priority, as the agent runs it where the OS allows (the last
    line of the output says whether it did here).

Lateness is measured twice per command: when the firing thread handed it to MQTT (after its ledger commit),
and when the broker acknowledged it (PUBACK, on paho's network thread).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edge.crops import CropConfig, make_crops
from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig
from edge.linecontrol.controller import LineController
from edge.linecontrol.failsafe import FailSafeTimer
from edge.linecontrol.ledger import CommandLedger, DecidedCommand
from edge.linecontrol.mqtt_link import MqttCommandSink
from edge.uplink.convert import garment_message
from edge.uplink.spool import FullPolicy, Spool
from seamline.clock import utcnow
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics
from seamline.localbroker import local_broker
from seamline.synth import SynthConfig, SyntheticLine

DETECTOR = Path(__file__).resolve().parents[1] / "models" / "demo" / "detector" / "detector.onnx"
TICKER, BETWEEN, TIMER_NORMAL, TIMER = (
    "ticker (before)",
    "between detections",
    "FailSafeTimer, normal priority",
    "FailSafeTimer (now)",
)
STRATEGIES = (TICKER, BETWEEN, TIMER_NORMAL, TIMER)


@dataclass
class Run:
    """One strategy over one line of garments: when each command was handed over and acknowledged."""

    deadlines: dict[str, float] = field(default_factory=dict)  # item id -> deadline_at
    handed: dict[str, float] = field(default_factory=dict)  # item id -> handed to MQTT
    items: dict[str, str] = field(default_factory=dict)  # command id -> item id
    acked: dict[str, float] = field(default_factory=dict)  # command id -> broker PUBACK
    detections: int = 0
    realtime: bool = False  # the timer thread ran at real-time priority

    def handed_late(self) -> list[float]:
        return [self.handed[item] - due for item, due in self.deadlines.items() if item in self.handed]

    def acked_late(self) -> list[float]:
        return [at - self.deadlines[self.items[command]] for command, at in self.acked.items()]


def _ticker(controller: LineController, ledger: CommandLedger, stop: threading.Event) -> None:
    """The agent's ``_tick_loop`` before the FailSafeTimer. ``tick()`` is now ``settle_overdue()``; the
    ledger's ``next_deadline()``, ``MIN(deadline_at)`` of the waiting garments, is ``waiting(limit=1)``."""
    while not stop.is_set():
        controller.settle_overdue()
        waiting = ledger.waiting(limit=1)
        wait = 0.25 if not waiting else min(0.25, max(0.005, waiting[0][1] - time.time()))
        stop.wait(wait)


class DetectionLoop:
    """The agent's per-garment work, in a loop: detect, crop, build the message, spool it."""

    def __init__(self, frames: list[np.ndarray], spool: Spool) -> None:
        self.detector = OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=DETECTOR, score_threshold=0.0))
        self.detector.warm_up(batch_sizes=(1,))
        self.frames = frames
        self.spool = spool
        self.crops = CropConfig()
        self.done = 0

    def one(self) -> None:
        n = self.done
        frame = self.frames[n % len(self.frames)]
        detections = self.detector.detect([frame])
        crops = make_crops([frame], detections, self.detector.label_names, self.crops)
        now = utcnow()
        message = garment_message(
            item_id=f"d{n}",
            site_id="site1",
            line_id="line1",
            station_id="st1",
            captured_at=now,
            deadline_at=now + timedelta(seconds=1),
            view_sizes=[frame.shape[:2]],
            camera_ids=["top"],
            crops=crops[:4],
            detector_version=self.detector.meta.version,
        )
        self.spool.put(f"d{n}", message.SerializeToString(), deadline_at=now.timestamp() + 1)
        self.done += 1


def run_strategy(
    strategy: str,
    *,
    bus: MqttBus,
    topics: LineTopics,
    detection: DetectionLoop,
    workdir: Path,
    garments: int,
    rate: float,
    budget: float,
) -> Run:
    run = Run()
    ledger = CommandLedger(workdir / f"{strategy.split()[0]}-{time.time_ns()}.db")

    def on_published(command_id: str) -> None:
        run.acked[command_id] = time.time()
        ledger.mark_published(command_id)

    def on_sent(command: DecidedCommand) -> None:
        run.handed[command.item_id] = time.time()
        run.items[command.command_id] = command.item_id

    sink = MqttCommandSink(bus, topics, on_published=on_published, on_sent=on_sent)
    controller = LineController(ledger, sink)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    after_each_detection: Callable[[], object] = lambda: None  # noqa: E731
    if strategy == TICKER:
        threads.append(threading.Thread(target=_ticker, args=(controller, ledger, stop), name="ticker"))
    elif strategy == BETWEEN:
        after_each_detection = controller.settle_overdue
    else:
        if strategy == TIMER_NORMAL:
            controller.timer = FailSafeTimer(controller.fail_safe, realtime=False)
        controller.start()

    def detect() -> None:
        while not stop.is_set():
            detection.one()
            run.detections += 1
            after_each_detection()

    def source() -> None:
        started = time.monotonic()
        for i in range(garments):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            item_id, deadline = f"g{i:04d}", time.time() + budget
            run.deadlines[item_id] = deadline
            controller.track(item_id, "st1", deadline)

    threads += [
        threading.Thread(target=detect, name="detect"),
        threading.Thread(target=source, name="source"),
    ]
    for thread in threads:
        thread.start()
    threads[-1].join()
    last_deadline = max(run.deadlines.values())
    while time.time() < last_deadline + 5 and len(run.acked) < garments:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(30)
    controller.stop()
    ledger.close()
    run.realtime = controller.timer.realtime_granted
    return run


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--garments", type=int, default=150, help="garments per strategy and round")
    parser.add_argument("--rate", type=float, default=20.0, help="garments captured per second")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds from capture to deadline_at")
    parser.add_argument("--margin", type=float, default=0.3, help="actuation margin (s), for the last column")
    parser.add_argument("--burners", type=int, default=2 * (os.cpu_count() or 1), help="spinning processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # 450 "diverted to review" warnings would bury the table

    line = SyntheticLine(SynthConfig(width=1280, height=720, seed=7))
    frames = [np.ascontiguousarray(line.garment(i).views[0].image) for i in range(8)]
    runs: dict[str, list[Run]] = {s: [] for s in STRATEGIES}
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    try:
        with tempfile.TemporaryDirectory() as tmp, local_broker(args.broker) as broker:
            workdir = Path(tmp)
            bus = MqttBus(MqttConfig(url=broker.url), client_id=f"bench-failsafe-{time.time_ns()}")
            bus.start()
            assert bus.wait_connected(30), f"no MQTT broker at {broker.url}"
            topics = LineTopics(f"bench-{time.time_ns()}", "site1", "line1")
            spool = Spool(workdir / "spool.db", max_items=500, full_policy=FullPolicy.DROP_OLDEST)
            detection = DetectionLoop(frames, spool)
            for _ in range(args.rounds):
                for strategy in STRATEGIES:
                    runs[strategy].append(
                        run_strategy(
                            strategy,
                            bus=bus,
                            topics=topics,
                            detection=detection,
                            workdir=workdir,
                            garments=args.garments,
                            rate=args.rate,
                            budget=args.budget,
                        )
                    )
            bus.stop()
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait(10)

    table = Table(
        title=f"Fail-safe lateness after deadline_at: {args.rounds} x {args.garments} garments at "
        f"{args.rate:g}/s, {args.burners} spinning processes + detection in process ({os.cpu_count()} CPUs)"
    )
    for column in (
        "strategy",
        "commands",
        "p50 ms",
        "p99 ms",
        "worst ms",
        "worst at broker ms",
        f"at broker > margin ({args.margin:g} s)",
        "detections",
    ):
        table.add_column(column, justify="right")
    summary = {}
    for strategy, results in runs.items():
        handed = [x for run in results for x in run.handed_late()]
        acked = [x for run in results for x in run.acked_late()]
        expected = sum(len(run.deadlines) for run in results)
        summary[strategy] = (_ms(handed, 0.99), max(handed), max(acked))
        table.add_row(
            strategy,
            f"{len(handed)}/{expected}",
            f"{_ms(handed, 0.5):.1f}",
            f"{_ms(handed, 0.99):.1f}",
            f"{1000 * max(handed):.1f}",
            f"{1000 * max(acked):.1f}",
            str(sum(x > args.margin for x in acked)),
            str(sum(run.detections for run in results)),
        )
    console = Console(width=200)
    console.print(table)
    new = summary[TIMER]
    for strategy in (TICKER, BETWEEN, TIMER_NORMAL):
        old = summary[strategy]
        console.print(
            f"{strategy} / FailSafeTimer: worst {old[1] / new[1]:.1f}x, p99 {old[0] / new[0]:.1f}x, "
            f"worst at broker {old[2] / new[2]:.1f}x"
        )
    console.print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms, real-time priority "
        f"{'granted' if all(r.realtime for r in runs[TIMER]) else 'refused (both FailSafeTimer rows alike)'}"
    )


if __name__ == "__main__":
    main()
