"""The MQTT bus against real brokers: acks, availability and last will, reconnect, queued QoS 1, sessions."""

import subprocess
import sys
import threading
import time

import pytest

from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.localbroker import start_embedded, start_mosquitto
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _bus(broker, **kw):
    bus = MqttBus(MqttConfig(url=broker.url, protocol=broker.protocol), **kw)
    bus.start()
    assert bus.wait_connected(10)
    return bus


def test_publish_ack_and_subscribe(mqtt_broker):
    received = []
    sub = _bus(mqtt_broker, client_id="t-bus-sub", persistent_session=False)
    sub.subscribe("seamline-test/bus/+/x", lambda topic, payload: received.append((topic, payload)))
    pub = _bus(mqtt_broker, client_id="t-bus-pub", persistent_session=False)
    try:
        time.sleep(0.3)
        acked = threading.Event()
        pub.publish("seamline-test/bus/a/x", b"hello", on_acked=acked.set)
        assert acked.wait(10)
        assert wait_until(lambda: received == [("seamline-test/bus/a/x", b"hello")])
    finally:
        pub.stop()
        sub.stop()


_CHILD = """
import os, signal, sys, time
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
bus = MqttBus(
    MqttConfig(url=sys.argv[1], protocol=sys.argv[3]), client_id="t-bus-child", availability_topic=sys.argv[2]
)
bus.start(); bus.wait_connected(10); bus.set_available(True)
time.sleep(1.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_availability_online_then_last_will_offline_on_crash(mqtt_broker):
    topic = f"seamline-test/site1/line1/edge-{time.time_ns()}/availability"
    states = []
    watcher = _bus(mqtt_broker, client_id="t-bus-watch", persistent_session=False)
    watcher.subscribe(topic, lambda t, p: states.append(p.decode()))
    try:
        time.sleep(0.3)
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, mqtt_broker.url, topic, mqtt_broker.protocol], timeout=60
        )
        assert child.returncode == -9
        # The broker publishes the will after the keepalive times out or the socket closes
        # (SIGKILL closes it).
        assert wait_until(lambda: states[-1:] == ["offline"], timeout=60), states
        assert "online" in states
    finally:
        watcher.stop()


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_reconnect_renews_subscriptions_and_flushes_queued_messages(tmp_path, kind, caplog):
    start = start_mosquitto if kind == "mosquitto" else start_embedded
    try:
        broker = start()
    except Exception as exc:
        pytest.skip(f"{kind} not available: {exc}")
    received = []
    sub = _bus(broker, client_id=f"t-re-sub-{kind}", persistent_session=False)
    sub.subscribe("seamline-test/re", lambda t, p: received.append(p))
    pub = _bus(broker, client_id=f"t-re-pub-{kind}", persistent_session=False)
    reconnected = threading.Event()
    pub.on_connect(reconnected.set)
    states = []  # (connected, last_error) as the publisher's state hooks saw them
    pub.on_state_change(lambda connected, error: states.append((connected, error)))
    try:
        port = broker.port
        broker.stop()
        assert wait_until(lambda: not pub.connected and not sub.connected)
        reconnected.clear()
        acks = []
        for i in range(5):  # published while the broker is down: paho queues them
            pub.publish("seamline-test/re", f"m{i}".encode(), on_acked=lambda i=i: acks.append(i))
        # Reconnecting fails while the broker is away: said once, not on each retry (1 s, then 2 s).
        assert wait_until(lambda: (pub.last_error or "").startswith("cannot reach "), timeout=10), (
            pub.last_error
        )
        time.sleep(3.5)
        broker = start(port=port)
        assert reconnected.wait(20) and sub.wait_connected(20)
        assert pub.last_error is None
        # Down with the reason it dropped, then why reconnecting failed (once, however many retries), then up.
        assert [connected for connected, _ in states] == [False, False, True], states
        assert states[0][1].startswith("disconnected: ") and states[1][1].startswith("cannot reach "), states
        assert states[2] == (True, None)
        failures = [
            r.getMessage()
            for r in caplog.records
            if r.levelname == "ERROR" and pub.client_id in r.getMessage()
        ]
        assert len(failures) == 1 and "Connection refused" in failures[0], failures
        assert wait_until(lambda: len(acks) == 5, timeout=20)
        # The subscriber may reconnect after the publisher flushed: only what arrived after it
        # re-subscribed counts.
        pub.publish("seamline-test/re", b"after")
        assert wait_until(lambda: b"after" in received, timeout=20)
    finally:
        pub.stop()
        sub.stop()
        broker.stop()


def test_persistent_session_keeps_messages_while_away(mqtt_broker):
    """A persistent session (MQTT 5: no clean start, a session expiry) survives the client's disconnect."""
    config = MqttConfig(url=mqtt_broker.url, protocol=mqtt_broker.protocol)
    topic = f"seamline-test/session/{time.time_ns()}"
    client_id = f"t-session-{time.time_ns()}"
    received: list[bytes] = []

    def subscriber() -> MqttBus:
        bus = MqttBus(config, client_id=client_id)
        bus.subscribe(topic, lambda t, p: received.append(p))
        bus.start()
        assert bus.wait_connected(10), bus.last_error
        return bus

    away = subscriber()
    time.sleep(0.3)  # the SUBACK
    away.stop()
    publisher = MqttBus(config, persistent_session=False)
    publisher.start()
    try:
        assert publisher.wait_connected(10), publisher.last_error
        acked = threading.Event()
        publisher.publish(topic, b"while-away", on_acked=acked.set)
        assert acked.wait(10)
    finally:
        publisher.stop()
    back = subscriber()
    try:
        assert wait_until(lambda: received == [b"while-away"], timeout=10), received
    finally:
        back.stop()
        # A clean start ends the session now rather than after SESSION_EXPIRY_S on a shared broker.
        cleaner = MqttBus(config, client_id=client_id, persistent_session=False)
        cleaner.start()
        cleaner.wait_connected(10)
        cleaner.stop()
