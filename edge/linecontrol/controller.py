"""Turn verdicts into exactly one line command per garment, failing safe when a verdict misses its deadline.

Decision logic over the durable ``CommandLedger``; the transport (MQTT) sits behind ``CommandSink``, and the
deadlines are kept by a ``FailSafeTimer`` on a thread of its own.

Rules:
  * every garment the agent captures is tracked with its deadline (belt speed and distance to the diverter);
  * a verdict that arrives by the deadline decides the command: pass -> pass, reject -> reject, anything else
    (review, or a verdict still waiting for a person) -> divert_review;
  * no verdict by the deadline -> divert_review (cause ``deadline_missed``); a verdict after that is recorded
    as late and never flips the command;
  * a garment the cloud refuses for good, or the edge cannot process, is diverted to review at once;
  * at start-up, before anything slow (the detector's load and warm-up), garments a stopped or killed agent
    left without a command are settled: overdue ones diverted at once, the others' timers armed;
  * a command decided but never acknowledged by the broker is sent again after a restart, under its own id and
    times, only while its garment has not yet reached the diverter (``deadline_at + actuation_margin_s``);
    past that it is marked expired in the ledger and not sent: the PLC has diverted the garment, as the
    contract tells it to when no command came in time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from edge.linecontrol.failsafe import FailSafeTimer
from edge.linecontrol.ledger import CommandLedger, DecidedCommand
from seamline.contract.messages import Verdict
from seamline.domain import Decision, LineAction

logger = logging.getLogger(__name__)


class CommandSink(Protocol):
    """Where decided commands go (the MQTT client). It marks a command published in the ledger
    (``CommandLedger.mark_published``) when the broker acknowledges it."""

    def send_command(self, command: DecidedCommand) -> None: ...


class VerdictOutcome(str, Enum):
    COMMANDED = "commanded"  # this verdict decided the garment's command
    LATE = "late"  # arrived after the deadline: fail-safe command issued instead, verdict recorded
    ALREADY_COMMANDED = (
        "already_commanded"  # the garment already has its command (a follow-up or late verdict)
    )
    DUPLICATE = "duplicate"  # the very verdict that decided the command, delivered again
    UNKNOWN_ITEM = "unknown_item"  # not a garment this agent tracks (another station, or long forgotten)


def action_for(verdict: Verdict) -> LineAction:
    """The line action a verdict asks for. Only a final pass passes and only a final reject rejects."""
    if verdict.final and verdict.decision == Decision.PASS:
        return LineAction.PASS
    if verdict.final and verdict.decision == Decision.REJECT:
        return LineAction.REJECT
    return LineAction.DIVERT_REVIEW


class LineController:
    """Decides and emits line commands.

    ``start()`` settles what a previous run left undecided and starts the fail-safe timer; without it (unit
    tests with a fake clock) deadlines are enforced only by calling ``settle_overdue()``.

    Args:
        ledger: the durable record of garments and commands.
        sink: sends commands (asynchronously) and marks them published in ``ledger`` on broker acks.
        clock: wall-clock seconds (deadlines survive restarts, so they are wall-clock, not monotonic).
        actuation_margin_s: how long after a garment's decision deadline it reaches the diverter.
    """

    def __init__(
        self,
        ledger: CommandLedger,
        sink: CommandSink,
        *,
        clock: Callable[[], float] = time.time,
        actuation_margin_s: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.clock = clock
        self.actuation_margin_s = actuation_margin_s
        self.timer = FailSafeTimer(self.fail_safe, clock=clock)

    def start(self) -> int:
        """Settle the garments a previous run left undecided, then keep every deadline from now on.

        Overdue garments are diverted here, on the caller's thread, before this returns; the others get their
        timers armed. Returns how many were diverted.
        """
        settled = 0
        while diverted := self.settle_overdue():
            settled += len(diverted)
        for item_id, deadline_at in self.ledger.waiting():
            self.timer.arm(item_id, deadline_at)
        self.timer.start()
        return settled

    def stop(self) -> None:
        self.timer.stop()

    def track(self, item_id: str, station_id: str, deadline_at: float) -> None:
        """Start the deadline clock for a captured garment: recorded first, then its timer armed."""
        self.ledger.register(item_id, station_id, deadline_at)
        self.timer.arm(item_id, deadline_at)

    def _emit(self, command: DecidedCommand | None) -> DecidedCommand | None:
        if command is not None:
            self.timer.cancel(command.item_id)
            self.sink.send_command(command)  # before the log line: the PLC is waiting, the log is not
            logger.info(
                "line command %s (%s)",
                command.action.value,
                command.cause,
                extra={"item_id": command.item_id},
            )
        return command

    def settle(
        self, item_id: str, action: LineAction, cause: str, verdict_id: str | None = None
    ) -> DecidedCommand | None:
        """Command a garment the edge decides itself (no detection, refused, edge error); None if already
        commanded."""
        return self._emit(self.ledger.decide(item_id, action, cause, verdict_id, now=self.clock()))

    def on_verdict(self, verdict: Verdict) -> VerdictOutcome:
        """Act on a verdict from the broker (already checked against the contract)."""
        item_id, verdict_id = verdict.item_id, verdict.verdict_id
        deadline = self.ledger.deadline_of(item_id)
        if deadline is None:
            return VerdictOutcome.UNKNOWN_ITEM
        now = self.clock()
        if now > deadline:
            self._emit(self.ledger.decide(item_id, LineAction.DIVERT_REVIEW, "deadline_missed", now=now))
        else:
            decided = self._emit(
                self.ledger.decide(item_id, action_for(verdict), "verdict", verdict_id, now=now)
            )
            if decided is not None:
                return VerdictOutcome.COMMANDED
        existing = self.ledger.command_for(item_id)
        if existing is not None and existing.verdict_id == verdict_id:
            return VerdictOutcome.DUPLICATE
        self.ledger.record_late_verdict(item_id, verdict_id)
        logger.info(
            "verdict after the command was decided; recorded, not acted on", extra={"item_id": item_id}
        )
        return VerdictOutcome.LATE if now > deadline else VerdictOutcome.ALREADY_COMMANDED

    def fail_safe(self, item_id: str) -> DecidedCommand | None:
        """The garment's deadline passed: divert it to review, unless it already has its command."""
        command = self._emit(
            self.ledger.decide(item_id, LineAction.DIVERT_REVIEW, "deadline_missed", now=self.clock())
        )
        if command is not None:
            logger.warning("no verdict before the deadline: diverted to review", extra={"item_id": item_id})
        return command

    def settle_overdue(self) -> list[DecidedCommand]:
        """Fail safe for every garment whose deadline has passed without a command (up to the ledger's
        batch size; at start-up, and in tests that move a fake clock instead of running the timer)."""
        commands = [self.fail_safe(item_id) for item_id in self.ledger.overdue(self.clock())]
        return [c for c in commands if c is not None]

    def resend_unpublished(self, skip: set[str] | None = None) -> int:
        """Send again, under the same command ids and times, every decided command the broker never
        acknowledged (after a restart) whose garment has not reached the diverter yet; mark the others
        expired. Returns how many were sent."""
        sent = expired = 0
        now = self.clock()
        for command in self.ledger.unpublished(limit=-1):
            if skip and command.command_id in skip:
                continue
            if command.deadline_at + self.actuation_margin_s <= now:
                self.ledger.mark_expired(command.command_id)
                expired += 1
                continue
            self.sink.send_command(command)
            sent += 1
        if expired:
            logger.warning(
                "%d unacknowledged line command(s) expired: their garments passed the diverter, which "
                "diverted them to review for want of a command; not sent again",
                expired,
            )
        return sent
