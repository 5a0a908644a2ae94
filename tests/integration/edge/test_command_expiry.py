"""Line commands cannot go stale on the broker: each is published with an MQTT 5 message expiry at the
garment's arrival at the diverter, so a PLC that reconnects after the garment has passed is not handed its
command. A real broker speaking MQTT 5, a PLC with a persistent session, the edge's own command sink."""

import json
import time

import pytest

from edge.linecontrol.ledger import CommandLedger
from edge.linecontrol.mqtt_link import MqttCommandSink
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import LineTopics, validate_payload
from seamline.domain import LineAction
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_plc_back_after_the_garment_passed_gets_only_the_live_commands(tmp_path, mqtt_broker):
    if mqtt_broker.protocol != "5":
        pytest.skip(f"message expiry is MQTT 5; this broker speaks {mqtt_broker.protocol}")
    topics = LineTopics(f"seamline-expiry{time.time_ns()}", "site1", "line1")
    received: list[dict] = []
    plc_id = f"plc-{time.time_ns()}"

    def plc() -> MqttBus:
        bus = MqttBus(
            MqttConfig(url=mqtt_broker.url, protocol="5"), client_id=plc_id, persistent_session=True
        )
        bus.subscribe(topics.commands, lambda topic, payload: received.append(json.loads(payload)))
        bus.start()
        assert bus.wait_connected(10)
        return bus

    first = plc()
    time.sleep(0.3)  # the subscription is in place on the broker
    first.stop()  # the PLC goes away; its session (and subscription) stays on the broker

    edge = MqttBus(MqttConfig(url=mqtt_broker.url, protocol="5"), client_id=f"edge-{time.time_ns()}")
    edge.start()
    assert edge.wait_connected(10)
    ledger = CommandLedger(tmp_path / "commands.db")
    acked: list[str] = []
    sink = MqttCommandSink(edge, topics, on_published=acked.append, actuation_margin_s=0.5)
    now = time.time()
    ledger.register("passes-soon", "st1", now + 0.5)  # reaches the diverter in 1 s
    ledger.register("still-coming", "st1", now + 60)
    for item_id in ("passes-soon", "still-coming"):
        sink.send_command(ledger.decide(item_id, LineAction.REJECT, "verdict", f"v-{item_id}"))
    try:
        assert wait_until(lambda: len(acked) == 2, timeout=10)
        time.sleep(2.5)  # the first garment passes the diverter while the PLC is away
        second = plc()
        assert wait_until(lambda: len(received) >= 1, timeout=10)
        time.sleep(0.5)
        second.stop()
    finally:
        edge.stop()
        ledger.close()
    assert [c["item_id"] for c in received] == ["still-coming"]
    validate_payload("commands", received[0])
    assert received[0]["deadline_at"] > received[0]["issued_at"]
