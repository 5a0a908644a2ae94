"""Watch a line over MQTT the way a dashboard would: verdicts and line commands, joined per garment.

``LineMonitor`` keeps one ``GarmentTrace`` per item id and turns them into ``LineStats``: throughput, line
actions, routes, frame-to-command latency, the overhead outside model compute, deadline misses, and — when a
truth function is given (the synthetic line knows every garment's right answer) — decision accuracy.

Latency is the line command's ``issued_at`` minus the verdict's ``captured_at``, both from the edge's clock.
Model compute is the detector's time plus the classifier call's (``timings_ms`` detect/edge_detect and
classify); the rest is overhead: queues, crops, spool, gRPC, persistence, routing, MQTT, the line controller.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

Truth = Callable[[str], str | None]  # item id -> "pass" / "reject", or None when unknown


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class GarmentTrace:
    item_id: str
    captured_at: float | None = None
    verdict: dict | None = None  # the last verdict seen from the cloud or the edge
    review: dict | None = None  # a reviewer's final verdict, if a person decided
    command: dict | None = None
    truth: str | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.command is None or self.captured_at is None:
            return None
        return (_ts(self.command["issued_at"]) - self.captured_at) * 1000

    @property
    def model_ms(self) -> float | None:
        if self.verdict is None:
            return None
        t = self.verdict.get("timings_ms", {})
        detect = t.get("detect", t.get("edge_detect"))
        if detect is None:
            return None
        return detect + t.get("classify", 0.0)

    @property
    def arm(self) -> str | None:
        """The rollout arm whose classifier decided the garment (None: no cloud verdict)."""
        if not self.verdict or self.verdict.get("source") != "cloud":
            return None
        return (self.verdict.get("rollout") or {}).get("arm", "champion")

    @property
    def automatic(self) -> bool:
        """Settled without a person: an automatic verdict commanded it in time."""
        return bool(
            self.command
            and self.command["cause"] in ("verdict", "no_detection")
            and self.command["action"] != "divert_review"
        )


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class LineStats:
    garments: int  # garments with a line command
    seconds: float  # first capture to last command
    garments_per_s: float
    actions: dict[str, int]
    causes: dict[str, int]
    routes: dict[str, int]  # route of the verdict behind each command (edge passes count as auto)
    deadline_misses: int
    latency_ms: dict[str, float | None]
    overhead_ms: dict[str, float | None]
    auto_share: float
    auto_accuracy: float | None  # automatic decisions equal to the truth
    line_accuracy: (
        float | None
    )  # all garments: pass->pass, reject->reject; a diversion counts as neither right nor wrong
    escapes: int  # truly defective (reject) garments the line passed automatically
    with_truth: int
    errors: int  # verdicts that carry a classifier error
    invalid_messages: int  # verdicts or commands that broke the contract's schema
    reviewed: int = 0  # garments with a final verdict from a reviewer
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class LineMonitor:
    """Subscribes to a line's verdicts and commands; thread-safe snapshots."""

    def __init__(self, truth: Truth | None = None) -> None:
        self.truth = truth
        self.traces: dict[str, GarmentTrace] = {}
        self.invalid = 0  # messages that failed the contract's JSON Schema
        self._lock = threading.Lock()

    def attach(self, bus: Any, verdict_topics: list[str], command_topic: str) -> None:
        """Follow a line's topics on a ``MqttBus`` (the cloud's verdicts and the edge's own).

        A message that breaks the contract's schema is counted, not used.
        """
        from seamline.contract.mqtt import PayloadError, validate_payload

        def checked(name: str, handle: Callable[[dict], None]) -> Callable[[str, bytes], None]:
            def on_message(_topic: str, payload: bytes) -> None:
                try:
                    data = json.loads(payload)
                    validate_payload(name, data)
                except (ValueError, PayloadError):
                    with self._lock:
                        self.invalid += 1
                    return
                handle(data)

            return on_message

        for topic in verdict_topics:
            bus.subscribe(topic, checked("verdicts", self.on_verdict))
        bus.subscribe(command_topic, checked("commands", self.on_command))

    def _trace(self, item_id: str) -> GarmentTrace:
        trace = self.traces.get(item_id)
        if trace is None:
            trace = self.traces[item_id] = GarmentTrace(item_id)
        return trace

    def on_verdict(self, verdict: dict) -> None:
        with self._lock:
            trace = self._trace(verdict["item_id"])
            if verdict["source"] == "review":  # a person's follow-up; the line acted on the verdict before it
                trace.review = verdict
                return
            trace.verdict = verdict
            trace.captured_at = _ts(verdict["timestamps"]["captured_at"])

    def on_command(self, command: dict) -> None:
        truth = self.truth(command["item_id"]) if self.truth else None
        with self._lock:
            trace = self._trace(command["item_id"])
            if trace.command is None:  # a re-sent command (same id after a restart) changes nothing
                trace.command = command
            trace.truth = truth

    def commanded(self) -> int:
        with self._lock:
            return sum(1 for t in self.traces.values() if t.command is not None)

    def item_ids(self) -> list[str]:
        with self._lock:
            return list(self.traces)

    def stats(self, select: Callable[[GarmentTrace], bool] | None = None) -> LineStats:
        """Statistics over the commanded garments (those ``select`` keeps, if given)."""
        with self._lock:
            traces = [t for t in self.traces.values() if t.command is not None and (not select or select(t))]
        actions = Counter(t.command["action"] for t in traces)
        causes = Counter(t.command["cause"] for t in traces)
        routes = Counter((t.verdict or {}).get("route", "none") for t in traces)
        latencies = [lat for t in traces if (lat := t.latency_ms) is not None]
        overheads = [
            t.latency_ms - t.model_ms
            for t in traces
            if t.command["cause"] in ("verdict", "no_detection")
            and t.latency_ms is not None
            and t.model_ms is not None
        ]
        starts = [t.captured_at for t in traces if t.captured_at is not None]
        ends = [_ts(t.command["issued_at"]) for t in traces]
        seconds = (max(ends) - min(starts)) if starts and ends else 0.0
        auto = [t for t in traces if t.automatic]
        judged = [t for t in traces if t.truth is not None]
        auto_judged = [t for t in auto if t.truth is not None]
        right_auto = sum(1 for t in auto_judged if t.command["action"] == t.truth)
        right_line = sum(1 for t in judged if t.command["action"] == t.truth)
        escapes = sum(1 for t in auto_judged if t.truth == "reject" and t.command["action"] == "pass")

        def summary(values: list[float]) -> dict[str, float | None]:
            return {
                "p50": percentile(values, 50),
                "p90": percentile(values, 90),
                "p99": percentile(values, 99),
                "max": max(values) if values else None,
                "n": len(values),
            }

        return LineStats(
            garments=len(traces),
            seconds=seconds,
            garments_per_s=len(traces) / seconds if seconds > 0 else 0.0,
            actions=dict(actions),
            causes=dict(causes),
            routes=dict(routes),
            deadline_misses=causes.get("deadline_missed", 0),
            latency_ms=summary(latencies),
            overhead_ms=summary(overheads),
            auto_share=len(auto) / len(traces) if traces else 0.0,
            auto_accuracy=right_auto / len(auto_judged) if auto_judged else None,
            line_accuracy=right_line / len(judged) if judged else None,
            escapes=escapes,
            with_truth=len(judged),
            errors=sum(1 for t in traces if (t.verdict or {}).get("error")),
            invalid_messages=self.invalid,
            reviewed=sum(1 for t in traces if t.review is not None),
        )
