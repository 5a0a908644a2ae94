"""Every branch of the line controller: exactly one command per garment, fail-safe on deadlines."""

import pytest

from edge.linecontrol.controller import LineController, VerdictOutcome, action_for
from edge.linecontrol.ledger import CommandLedger
from seamline.domain import LineAction
from tests.fixtures.messages import verdict


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSink:
    """Collects commands; a unit-test double for the MQTT client (pure logic under test)."""

    def __init__(self) -> None:
        self.sent = []

    def send_command(self, command) -> None:
        self.sent.append(command)


@pytest.fixture
def setup(tmp_path):
    clock, sink = Clock(), RecordingSink()
    ledger = CommandLedger(tmp_path / "ledger.db")
    yield LineController(ledger, sink, clock=clock), sink, clock, ledger
    ledger.close()


def _verdict(item_id="g1", decision="reject", final=True, verdict_id="v1"):
    return verdict(
        item_id=item_id,
        verdict_id=verdict_id,
        decision=decision,
        final=final,
        route="auto" if final else "human",
        priority="none" if final else "medium",
    )


@pytest.mark.parametrize(
    "decision, final, action",
    [
        ("pass", True, LineAction.PASS),
        ("reject", True, LineAction.REJECT),
        ("review", True, LineAction.DIVERT_REVIEW),
        ("review", False, LineAction.DIVERT_REVIEW),
        ("reject", False, LineAction.DIVERT_REVIEW),
        ("pass", False, LineAction.DIVERT_REVIEW),
    ],
)
def test_action_mapping(decision, final, action):
    assert action_for(_verdict(decision=decision, final=final)) is action


def test_verdict_in_time_commands_once(setup):
    controller, sink, clock, _ = setup
    controller.track("g1", "st1", deadline_at=clock.now + 5)
    assert controller.on_verdict(_verdict()) is VerdictOutcome.COMMANDED
    assert controller.on_verdict(_verdict()) is VerdictOutcome.DUPLICATE
    assert [(c.action, c.cause, c.verdict_id) for c in sink.sent] == [(LineAction.REJECT, "verdict", "v1")]


def test_follow_up_verdict_does_not_flip(setup):
    controller, sink, clock, ledger = setup
    controller.track("g1", "st1", deadline_at=clock.now + 5)
    controller.on_verdict(_verdict(decision="review", final=False, verdict_id="v1"))
    assert (
        controller.on_verdict(_verdict(decision="pass", final=True, verdict_id="v2"))
        is VerdictOutcome.ALREADY_COMMANDED
    )
    assert [c.action for c in sink.sent] == [LineAction.DIVERT_REVIEW]
    assert ledger.counts()["late_verdicts"] == 1


def test_deadline_miss_diverts_and_late_verdict_is_only_recorded(setup):
    controller, sink, clock, ledger = setup
    controller.track("g1", "st1", deadline_at=clock.now + 1)
    assert controller.settle_overdue() == []
    clock.now += 1.01
    (command,) = controller.settle_overdue()
    assert (command.action, command.cause) == (LineAction.DIVERT_REVIEW, "deadline_missed")
    assert controller.settle_overdue() == []
    assert controller.on_verdict(_verdict(decision="pass")) is VerdictOutcome.LATE
    assert len(sink.sent) == 1 and ledger.counts()["late_verdicts"] == 1


def test_verdict_after_deadline_before_tick_still_fails_safe(setup):
    controller, sink, clock, _ = setup
    controller.track("g1", "st1", deadline_at=clock.now + 1)
    clock.now += 2
    assert controller.on_verdict(_verdict(decision="pass")) is VerdictOutcome.LATE
    assert [(c.action, c.cause) for c in sink.sent] == [(LineAction.DIVERT_REVIEW, "deadline_missed")]


def test_verdict_exactly_at_the_deadline_counts(setup):
    controller, sink, clock, _ = setup
    controller.track("g1", "st1", deadline_at=clock.now)
    assert controller.on_verdict(_verdict(decision="pass")) is VerdictOutcome.COMMANDED


def test_unknown_item_is_ignored(setup):
    controller, sink, _, _ = setup
    assert controller.on_verdict(_verdict(item_id="other")) is VerdictOutcome.UNKNOWN_ITEM
    assert sink.sent == []


def test_local_settle_then_own_verdict_echo(setup):
    controller, sink, clock, _ = setup
    controller.track("g1", "st1", deadline_at=clock.now + 5)
    controller.settle("g1", LineAction.PASS, "no_detection", verdict_id="edge-v1")
    assert controller.on_verdict(_verdict(decision="pass", verdict_id="edge-v1")) is VerdictOutcome.DUPLICATE
    assert controller.settle("g1", LineAction.DIVERT_REVIEW, "refused") is None
    assert len(sink.sent) == 1


def test_restart_keeps_commands_and_resends_only_unacknowledged(tmp_path):
    clock, sink = Clock(), RecordingSink()
    ledger = CommandLedger(tmp_path / "ledger.db")
    controller = LineController(ledger, sink, clock=clock)
    for i in range(3):
        controller.track(f"g{i}", "st1", deadline_at=clock.now + 5)
        controller.on_verdict(_verdict(item_id=f"g{i}", verdict_id=f"v{i}"))
    ledger.mark_published(sink.sent[0].command_id)  # what the MQTT sink does on the broker's ack
    controller.track("g3", "st1", deadline_at=clock.now + 1)
    ledger.close()

    sink2 = RecordingSink()
    controller2 = LineController(CommandLedger(tmp_path / "ledger.db"), sink2, clock=clock)
    assert controller2.resend_unpublished() == 2
    assert [c.command_id for c in sink2.sent] == [c.command_id for c in sink.sent[1:]]
    assert controller2.on_verdict(_verdict(item_id="g1", verdict_id="v1")) is VerdictOutcome.DUPLICATE
    clock.now += 2  # g3 was waiting across the restart and its deadline passed
    assert [c.item_id for c in controller2.settle_overdue()] == ["g3"]


def test_start_diverts_overdue_garments_at_once_and_arms_the_others(tmp_path):
    clock, sink = Clock(), RecordingSink()
    ledger = CommandLedger(tmp_path / "ledger.db")
    for i in range(1200):  # more than one batch of the ledger's overdue query
        ledger.register(f"late{i}", "st1", deadline_at=clock.now - 1 - i * 0.001)
    ledger.register("live", "st1", deadline_at=clock.now + 30)
    ledger.register("done", "st1", deadline_at=clock.now - 5)
    ledger.decide("done", LineAction.PASS, "verdict", "v1", now=clock.now - 6)
    controller = LineController(ledger, sink, clock=clock)
    try:
        assert controller.start() == 1200
        assert {c.item_id for c in sink.sent} == {f"late{i}" for i in range(1200)}
        assert {(c.action, c.cause) for c in sink.sent} == {(LineAction.DIVERT_REVIEW, "deadline_missed")}
        assert len(controller.timer) == 1  # "live" waits for its verdict or its deadline
        assert controller.settle_overdue() == []
    finally:
        controller.stop()
        ledger.close()


def test_a_restart_resends_only_commands_whose_garment_is_still_on_its_way(tmp_path):
    clock, sink = Clock(), RecordingSink()
    ledger = CommandLedger(tmp_path / "ledger.db")
    ledger.register("coming", "st1", deadline_at=clock.now + 1)
    ledger.register("arriving", "st1", deadline_at=clock.now - 0.2)  # at the diverter in 0.1 s (margin 0.3)
    ledger.register("gone", "st1", deadline_at=clock.now - 0.4)  # passed the diverter 0.1 s ago
    decided = {
        i: ledger.decide(i, LineAction.REJECT, "verdict", f"v-{i}", now=clock.now - 2)
        for i in ("coming", "arriving", "gone")
    }
    controller = LineController(ledger, sink, clock=clock, actuation_margin_s=0.3)
    assert controller.resend_unpublished() == 2
    assert [c.command_id for c in sink.sent] == [decided[i].command_id for i in ("coming", "arriving")]
    assert sink.sent[0].decided_at == clock.now - 2  # the original times, not fresh ones
    counts = ledger.counts()
    assert (counts["decided"], counts["unpublished"], counts["expired"]) == (3, 2, 1)
    assert controller.resend_unpublished() == 2  # the expired one is never sent again
    clock.now += 100
    assert ledger.prune(older_than=clock.now) == 1  # only settled commands are pruned: the expired one
    for command in sink.sent:
        ledger.mark_published(command.command_id)
    assert ledger.prune(older_than=clock.now - 200) == 0  # retention counts from the decision
    assert ledger.prune(older_than=clock.now) == 2
    ledger.close()
