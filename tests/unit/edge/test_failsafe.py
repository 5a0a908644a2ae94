"""The fail-safe timer on the real clocks: on time, in deadline order, cancellable, and independent of a busy
or stuck detection thread. Bounds on lateness are generous (a loaded 2-core CI machine); never-early is exact.
"""

import threading
import time

import pytest

from edge.linecontrol.controller import LineController
from edge.linecontrol.failsafe import FailSafeTimer
from edge.linecontrol.ledger import CommandLedger
from seamline.domain import LineAction

SLACK_S = 0.5  # how late a fire may be on a loaded CI machine; the bench measures the real lateness


class Fired:
    """Records (item id, wall time) of each fire."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self.event = threading.Event()

    def __call__(self, item_id: str) -> None:
        self.items.append((item_id, time.time()))
        self.event.set()


@pytest.fixture
def timer():
    fired = Fired()
    timer = FailSafeTimer(fired)
    timer.start()
    yield timer, fired
    timer.stop()


def _wait_for(fired: Fired, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(fired.items) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_fires_each_garment_at_its_deadline_in_deadline_order(timer):
    timer, fired = timer
    now = time.time()
    deadlines = {"c": now + 0.6, "a": now + 0.2, "b": now + 0.4, "past": now - 5}
    for item_id, deadline in deadlines.items():
        timer.arm(item_id, deadline)
    _wait_for(fired, 4)
    assert [item for item, _ in fired.items] == ["past", "a", "b", "c"]
    for item, at in fired.items:
        assert deadlines[item] <= at < max(deadlines[item], now) + SLACK_S, item
    assert len(timer) == 0


def test_an_earlier_deadline_armed_while_sleeping_wakes_the_timer(timer):
    timer, fired = timer
    timer.arm("far", time.time() + 30)
    time.sleep(0.1)  # the thread now sleeps until "far"
    soon = time.time() + 0.2
    timer.arm("soon", soon)
    assert fired.event.wait(10)
    assert fired.items[0][0] == "soon" and soon <= fired.items[0][1] < soon + SLACK_S


def test_cancelled_garments_do_not_fire(timer):
    timer, fired = timer
    now = time.time()
    timer.arm("decided", now + 0.2)
    timer.arm("waiting", now + 0.4)
    timer.cancel("decided")
    _wait_for(fired, 1)
    time.sleep(0.2)
    assert [item for item, _ in fired.items] == ["waiting"]


def test_a_fire_that_fails_is_tried_again():
    calls = []

    def flaky(item_id: str) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError("disk I/O error")

    timer = FailSafeTimer(flaky)
    timer.start()
    try:
        timer.arm("g1", time.time())
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        timer.stop()
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.09


def test_commands_go_out_while_the_detection_thread_is_busy_or_stuck(tmp_path):
    """The detector holds the interpreter (pure-Python work) or hangs for seconds: deadlines are kept."""

    class StampingSink:
        def __init__(self) -> None:
            self.sent: list[tuple[str, float, float]] = []  # (item, deadline, handed over at)

        def send_command(self, command) -> None:
            self.sent.append((command.item_id, command.deadline_at, time.time()))

    ledger = CommandLedger(tmp_path / "ledger.db")
    sink = StampingSink()
    controller = LineController(ledger, sink)
    controller.start()
    stuck, busy_until = threading.Event(), time.monotonic() + 3.0

    def busy_detector() -> None:  # holds the GIL between switch intervals, like crops and protobufs do
        x = 0
        while time.monotonic() < busy_until:
            x += 1

    threads = [threading.Thread(target=busy_detector), threading.Thread(target=stuck.wait, args=(30,))]
    for thread in threads:
        thread.start()
    try:
        now = time.time()
        for i in range(10):
            controller.track(f"g{i}", "st1", now + 0.3 + 0.2 * i)
        controller.track("answered", "st1", now + 0.5)
        controller.settle("answered", LineAction.PASS, "verdict", "v1")  # decided in time: no fail-safe
        deadline = time.monotonic() + 15
        while len(sink.sent) < 11 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not stuck.is_set()  # the stuck detection thread never got going again
    finally:
        stuck.set()
        for thread in threads:
            thread.join()
        controller.stop()
    fail_safes = [(item, due, at) for item, due, at in sink.sent if item != "answered"]
    assert [item for item, _, _ in fail_safes] == [f"g{i}" for i in range(10)]
    for item, due, at in fail_safes:
        assert due <= at < due + SLACK_S, (item, at - due)
    assert {(c.action, c.cause) for c in map(ledger.command_for, [f"g{i}" for i in range(10)])} == {
        (LineAction.DIVERT_REVIEW, "deadline_missed")
    }
    ledger.close()
