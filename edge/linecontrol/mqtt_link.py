"""Line control over MQTT: verdicts in (QoS 1, schema-checked), line commands out (QoS 1, acked)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edge.linecontrol.controller import LineController, VerdictOutcome
from edge.linecontrol.ledger import DecidedCommand
from seamline.comms.mqtt import MqttBus
from seamline.contract.messages import LineCommand
from seamline.contract.mqtt import LineTopics, PayloadError, validate_payload

logger = logging.getLogger(__name__)


class MqttCommandSink:
    """Publishes decided commands on the line's command topic; marks them published on the broker's ack."""

    def __init__(self, bus: MqttBus, topics: LineTopics, site_id: str, line_id: str) -> None:
        self.bus = bus
        self.topics = topics
        self.site_id = site_id
        self.line_id = line_id
        self.controller: LineController | None = None
        self.on_sent: Callable[[DecidedCommand], None] = lambda command: None

    def send_command(self, command: DecidedCommand) -> None:
        payload = LineCommand(
            command_id=command.command_id,
            item_id=command.item_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=command.station_id,
            action=command.action,
            cause=command.cause,  # type: ignore[arg-type]
            verdict_id=command.verdict_id,
            issued_at=datetime.fromtimestamp(command.decided_at, UTC),
            deadline_at=datetime.fromtimestamp(command.deadline_at, UTC),
        )
        controller = self.controller
        self.bus.publish(
            self.topics.commands,
            payload.to_json(),
            qos=1,
            on_acked=(lambda: controller.published(command.command_id)) if controller else None,
        )
        self.on_sent(command)


def verdict_listener(
    controller: LineController,
    site_id: str,
    line_id: str,
    on_outcome: Callable[[dict[str, Any], VerdictOutcome], None],
) -> Callable[[str, bytes], None]:
    """An MQTT handler that checks each verdict against the contract and hands it to ``controller``."""

    def handle(topic: str, payload: bytes) -> None:
        try:
            verdict = json.loads(payload)
            validate_payload("verdicts", verdict)
        except (ValueError, PayloadError) as exc:
            logger.warning("ignoring malformed verdict on %s: %s", topic, str(exc)[:300])
            return
        if verdict["site_id"] != site_id or verdict["line_id"] != line_id:
            return
        on_outcome(verdict, controller.on_verdict(verdict))

    return handle
