"""Line control over MQTT: verdicts in (QoS 1, schema-checked), line commands out (QoS 1, acked)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from edge.linecontrol.controller import LineController, VerdictOutcome
from edge.linecontrol.ledger import DecidedCommand
from seamline.comms.mqtt import MqttBus
from seamline.contract.messages import LineCommand, Verdict
from seamline.contract.mqtt import LineTopics, validate_payload

logger = logging.getLogger(__name__)


class MqttCommandSink:
    """Publishes decided commands on the line's command topic (QoS 1).

    Args:
        bus: the agent's MQTT connection.
        topics: the line's topics (its site and line ids go into every command).
        on_published: called with the command id when the broker acknowledged the command (on the network
            thread); the ledger's ``mark_published``.
        on_sent: called with each command once handed to the bus (metrics).
        actuation_margin_s: how long after its decision deadline a garment reaches the diverter: the
            command's ``deadline_at`` is that arrival, and its MQTT 5 message expiry ends there.
        clock: wall-clock seconds.
    """

    def __init__(
        self,
        bus: MqttBus,
        topics: LineTopics,
        *,
        on_published: Callable[[str], None],
        on_sent: Callable[[DecidedCommand], None] | None = None,
        actuation_margin_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.on_published = on_published
        self.on_sent = on_sent
        self.actuation_margin_s = actuation_margin_s
        self.clock = clock

    def send_command(self, command: DecidedCommand) -> None:
        """Publish with the command's own times (a re-send is the same message) and an expiry at the
        garment's arrival, so a broker never hands a PLC that reconnects later a command for a garment long
        gone (at least one second: MQTT counts whole seconds; the PLC ignores what comes after
        ``deadline_at``)."""
        arrives_at = command.deadline_at + self.actuation_margin_s
        payload = LineCommand(
            command_id=command.command_id,
            item_id=command.item_id,
            site_id=self.topics.site,
            line_id=self.topics.line,
            station_id=command.station_id,
            action=command.action,
            cause=command.cause,  # type: ignore[arg-type]
            verdict_id=command.verdict_id,
            issued_at=datetime.fromtimestamp(command.decided_at, timezone.utc),
            deadline_at=datetime.fromtimestamp(arrives_at, timezone.utc),
        )
        command_id = command.command_id
        self.bus.publish(
            self.topics.commands,
            payload.to_json(),
            qos=1,
            on_acked=lambda: self.on_published(command_id),
            expiry_s=max(1.0, arrives_at - self.clock()),
        )
        if self.on_sent is not None:
            self.on_sent(command)


def verdict_listener(
    controller: LineController,
    site_id: str,
    line_id: str,
    on_outcome: Callable[[Verdict, VerdictOutcome], None],
) -> Callable[[str, bytes], None]:
    """An MQTT handler that checks each verdict against the contract and hands it, typed, to
    ``controller``."""

    def handle(topic: str, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            validate_payload("verdicts", data)  # names the failing field, for the log
            verdict = Verdict.model_validate(data)
        except ValueError as exc:  # bad JSON, PayloadError and pydantic's ValidationError alike
            logger.warning("ignoring malformed verdict on %s: %s", topic, str(exc)[:300])
            return
        if verdict.site_id != site_id or verdict.line_id != line_id:
            return
        on_outcome(verdict, controller.on_verdict(verdict))

    return handle
