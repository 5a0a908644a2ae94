"""Each broker the harness can provide is a real MQTT broker: retained state and QoS 1 both work."""

import threading

import paho.mqtt.client as mqtt
import pytest

from seamline.localbroker import local_broker, mqtt_answers, start_embedded, start_mosquitto

pytestmark = pytest.mark.integration


def _retained_round_trip(host: str, port: int) -> bytes:
    topic = "seamline-test/site1/line1/edge/availability"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="seamline-test-retain-pub")
    pub.connect(host, port)
    pub.loop_start()
    pub.publish(topic, "online", qos=1, retain=True).wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()
    got = threading.Event()
    payloads: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="seamline-test-retain-sub")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    sub.on_message = lambda c, u, msg: (payloads.append(msg.payload), got.set())
    sub.connect(host, port)
    sub.loop_start()
    try:
        assert got.wait(10), "retained message not delivered"
    finally:
        sub.loop_stop()
        sub.disconnect()
    return payloads[0]


def test_session_broker_is_real(mqtt_broker):
    assert mqtt_answers(mqtt_broker.host, mqtt_broker.port)
    assert _retained_round_trip(mqtt_broker.host, mqtt_broker.port) == b"online"


def test_embedded_broker_fallback():
    with start_embedded() as broker:
        assert broker.kind == "embedded"
        assert _retained_round_trip(broker.host, broker.port) == b"online"
    assert not mqtt_answers(broker.host, broker.port, timeout=0.5)


def test_mosquitto_started_on_a_free_port():
    try:
        broker = start_mosquitto()
    except Exception as exc:  # mosquitto is optional on a user's machine
        pytest.skip(f"mosquitto not available: {exc}")
    with broker:
        assert broker.kind == "mosquitto" and broker.port != 1883
        assert _retained_round_trip(broker.host, broker.port) == b"online"
    assert not mqtt_answers(broker.host, broker.port, timeout=0.5)


def test_nothing_answering_means_a_broker_is_started():
    with local_broker("mqtt://127.0.0.1:1", prefer=None) as broker:
        assert broker.kind in ("mosquitto", "embedded")
        assert mqtt_answers(broker.host, broker.port)


def test_a_port_that_is_not_mqtt_is_not_mistaken_for_a_broker():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not mqtt_answers("127.0.0.1", s.getsockname()[1], timeout=0.5)
