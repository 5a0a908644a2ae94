"""The demo's line monitor joins verdicts and commands per garment and computes the line's figures."""

from datetime import UTC, datetime, timedelta

import pytest

from seamline.demo.monitor import LineMonitor

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def _iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _verdict(
    item, captured, *, source="cloud", route="auto", decision="pass", detect=20.0, classify=100.0, error=None
):
    timings = {"detect": detect} if source == "edge" else {"edge_detect": detect, "classify": classify}
    return {
        "item_id": item,
        "source": source,
        "route": route,
        "decision": decision,
        "timings_ms": timings,
        "timestamps": {"captured_at": _iso(captured)},
        "error": error,
    }


def _command(item, issued, action, cause="verdict"):
    return {"item_id": item, "action": action, "cause": cause, "issued_at": _iso(issued)}


def test_stats_join_verdicts_and_commands():
    truth = {"a": "pass", "b": "reject", "c": "reject", "d": "pass"}
    monitor = LineMonitor(truth=truth.get)
    monitor.on_verdict(_verdict("a", 0.0, source="edge", detect=30.0))
    monitor.on_command(_command("a", 0.040, "pass", "no_detection"))  # 40 ms: 30 model + 10 overhead
    monitor.on_verdict(_verdict("b", 1.0, decision="reject"))
    monitor.on_command(_command("b", 1.150, "reject"))  # 150 ms: 120 model + 30 overhead
    monitor.on_verdict(_verdict("c", 2.0, decision="pass"))
    monitor.on_command(_command("c", 2.200, "pass"))  # an escape: truly reject, passed automatically
    monitor.on_command(_command("d", 9.0, "divert_review", "deadline_missed"))  # no verdict (yet)
    monitor.on_command(_command("d", 9.5, "pass"))  # a re-sent command changes nothing
    stats = monitor.stats()
    assert stats.garments == 4 and stats.deadline_misses == 1
    assert stats.actions == {"pass": 2, "reject": 1, "divert_review": 1}
    assert stats.latency_ms["n"] == 3 and stats.latency_ms["p50"] == pytest.approx(150.0, abs=1e-3)
    assert stats.overhead_ms["n"] == 3 and stats.overhead_ms["p50"] == pytest.approx(30.0, abs=1e-3)
    assert stats.auto_share == 0.75 and stats.auto_accuracy == pytest.approx(2 / 3) and stats.escapes == 1
    assert stats.line_accuracy == pytest.approx(2 / 4) and stats.with_truth == 4
    assert stats.seconds == pytest.approx(9.0) and stats.garments_per_s == pytest.approx(4 / 9.0)


def test_a_late_verdict_fills_in_the_latency_of_a_diverted_garment():
    monitor = LineMonitor()
    monitor.on_command(_command("x", 5.7, "divert_review", "deadline_missed"))
    assert monitor.stats().latency_ms["n"] == 0
    monitor.on_verdict(_verdict("x", 0.0, route="human", decision="review"))
    stats = monitor.stats()
    assert (
        stats.latency_ms["p50"] == pytest.approx(5700.0, abs=1e-3) and stats.overhead_ms["n"] == 0
    )  # no overhead for misses
    assert stats.auto_share == 0.0 and stats.auto_accuracy is None


class _Bus:
    def __init__(self):
        self.handlers = {}

    def subscribe(self, topic, handler):
        self.handlers[topic] = handler


def test_messages_off_contract_are_counted_not_used():
    bus = _Bus()
    monitor = LineMonitor()
    monitor.attach(bus, ["v", "ev"], "c")
    bus.handlers["c"]("c", b"{not json")
    bus.handlers["c"]("c", b'{"item_id": "a", "action": "explode"}')
    assert monitor.invalid == 2 and monitor.stats().garments == 0 and monitor.stats().invalid_messages == 2


def test_stats_of_a_selection_and_the_rollout_arm_of_each_garment():
    monitor = LineMonitor()
    monitor.on_verdict(_verdict("a", 0.0, source="edge"))
    monitor.on_command(_command("a", 0.1, "pass", "no_detection"))
    champion = _verdict("b", 1.0, decision="reject")  # no rollout field: decided before any rollout
    monitor.on_verdict(champion)
    monitor.on_command(_command("b", 1.2, "reject"))
    candidate = _verdict("c", 2.0)
    candidate["rollout"] = {"revision": 1, "mode": "canary", "share": 0.5, "arm": "candidate"}
    monitor.on_verdict(candidate)
    monitor.on_command(_command("c", 2.3, "pass"))
    arms = {t.item_id: t.arm for t in monitor.traces.values()}
    assert arms == {"a": None, "b": "champion", "c": "candidate"}
    assert monitor.stats(lambda t: t.arm == "candidate").garments == 1
    assert monitor.stats(lambda t: t.arm is not None).actions == {"reject": 1, "pass": 1}
    assert monitor.stats(lambda t: False).garments == 0 and monitor.stats().garments == 3
    assert sorted(monitor.item_ids()) == ["a", "b", "c"]
