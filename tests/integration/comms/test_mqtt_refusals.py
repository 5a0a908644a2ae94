"""What the broker will not take, reported: wrong credentials, an ACL denial, an untrusted TLS certificate.

Against a Mosquitto started here with a password file, an ACL and a TLS listener (``secured_broker``); the
protocol-version tests use the embedded 3.1.1 broker too.
"""

import logging
import threading
import time

import pytest

from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.errors import ConfigError
from seamline.localbroker import start_embedded
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _errors_about(caplog, bus: MqttBus) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and bus.client_id in r.getMessage()
    ]


class _Outcomes:
    """The outcome of each publish, by payload: "acked" or the refusal's reason."""

    def __init__(self) -> None:
        self.by_payload: dict[bytes, str] = {}

    def publish(self, bus: MqttBus, topic: str, payload: bytes) -> None:
        bus.publish(
            topic,
            payload,
            on_acked=lambda: self._record(payload, "acked"),
            on_refused=lambda reason: self._record(payload, reason),
        )

    def _record(self, payload: bytes, outcome: str) -> None:
        assert payload not in self.by_payload, f"two outcomes for {payload!r}"
        self.by_payload[payload] = outcome


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_wrong_password_is_reported_once_and_never_connects(secured_broker, caplog, protocol):
    bus = MqttBus(
        secured_broker.mqtt_config(wrong_password=True, protocol=protocol), persistent_session=False
    )
    states = []
    bus.on_state_change(lambda connected, error: states.append((connected, error)))
    caplog.set_level(logging.INFO, logger="seamline.comms.mqtt")
    bus.start()
    try:
        assert wait_until(lambda: bus.last_error is not None, timeout=10)
        time.sleep(3.5)  # paho retries after 1 s, then 2 s: the same refusal again is not logged again
        # Mosquitto answers a wrong password with "Not authorized" (MQTT 5 reason 0x87, 3.1.1 return code 5).
        assert bus.last_error == "connect refused: Not authorized"
        assert not bus.connected
        assert states == [(False, "connect refused: Not authorized")]
        errors = _errors_about(caplog, bus)
        assert len(errors) == 1 and "connect refused: Not authorized" in errors[0], errors
    finally:
        bus.stop()


def test_acl_denied_publish_is_refused_not_acked(secured_broker, caplog):
    bus = MqttBus(secured_broker.mqtt_config(), persistent_session=False)
    bus.start()
    outcomes = _Outcomes()
    try:
        assert bus.wait_connected(10), bus.last_error
        outcomes.publish(bus, f"{secured_broker.denied_topic}/verdicts", b"denied")
        outcomes.publish(bus, f"{secured_broker.allowed_topic}/verdicts", b"allowed")
        assert wait_until(lambda: len(outcomes.by_payload) == 2, timeout=10), outcomes.by_payload
        assert outcomes.by_payload == {b"denied": "Not authorized (0x87)", b"allowed": "acked"}
        assert bus.connected  # a refused publish does not cost the connection

        # Without on_refused the refusal is logged, naming the topic.
        caplog.set_level(logging.ERROR, logger="seamline.comms.mqtt")
        acked = threading.Event()
        bus.publish(f"{secured_broker.denied_topic}/commands", b"x", on_acked=acked.set)
        assert wait_until(
            lambda: any("refused the publish" in r.getMessage() for r in caplog.records), timeout=10
        )
        (message,) = [r.getMessage() for r in caplog.records if "refused the publish" in r.getMessage()]
        assert f"{secured_broker.denied_topic}/commands" in message and "Not authorized" in message
        assert not acked.is_set()
    finally:
        bus.stop()


def test_over_3_1_1_the_broker_acks_what_it_refuses(secured_broker):
    """Why MQTT 5 is the default: Mosquitto drops a 3.1.1 publish its ACL denies, and acknowledges it."""
    bus = MqttBus(secured_broker.mqtt_config(protocol="3.1.1"), persistent_session=False)
    bus.start()
    outcomes = _Outcomes()
    try:
        assert bus.wait_connected(10), bus.last_error
        outcomes.publish(bus, f"{secured_broker.denied_topic}/verdicts", b"denied")
        assert wait_until(lambda: outcomes.by_payload == {b"denied": "acked"}, timeout=10), (
            outcomes.by_payload
        )
    finally:
        bus.stop()


def test_tls_with_an_untrusted_ca_says_why_and_the_right_ca_connects(secured_broker, caplog):
    caplog.set_level(logging.ERROR, logger="seamline.comms.mqtt")
    wrong = MqttBus(
        secured_broker.mqtt_config(tls=True, ca_file=secured_broker.untrusted_ca_file),
        persistent_session=False,
    )
    wrong.start()
    try:
        assert wait_until(lambda: wrong.last_error is not None, timeout=10)
        assert wrong.last_error.startswith("TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED]"), (
            wrong.last_error
        )
        assert not wrong.connected
        errors = _errors_about(caplog, wrong)
        assert len(errors) == 1 and "CERTIFICATE_VERIFY_FAILED" in errors[0], errors
    finally:
        wrong.stop()

    right = MqttBus(secured_broker.mqtt_config(tls=True), persistent_session=False)
    right.start()
    try:
        assert right.wait_connected(10), right.last_error
        acked = threading.Event()
        right.publish(f"{secured_broker.allowed_topic}/tls", b"ok", on_acked=acked.set)
        assert acked.wait(10)
        assert right.last_error is None
    finally:
        right.stop()


def test_protocol_option_against_a_3_1_1_only_broker(caplog):
    """The embedded broker speaks only 3.1.1: an MQTT 5 bus says what to change, protocol "3.1.1" works."""
    try:
        broker = start_embedded()
    except Exception as exc:
        pytest.skip(f"embedded broker not available: {exc}")
    hint = 'set mqtt.protocol to "3.1.1"'
    try:
        assert broker.protocol == "3.1.1"
        # A plain MQTT 5 CONNECT is refused...
        v5 = MqttBus(MqttConfig(url=broker.url, protocol="5"), persistent_session=False)
        # ...one asking for a persistent session (a property) is not answered at all: paho gives up after the
        # keepalive.
        v5_session = MqttBus(MqttConfig(url=broker.url, protocol="5", keepalive_s=5))
        v5.start()
        v5_session.start()
        try:
            assert wait_until(
                lambda: v5.last_error is not None and v5_session.last_error is not None, timeout=30
            )
            assert (
                v5.last_error.startswith("connect refused: Unsupported protocol version")
                and hint in v5.last_error
            )
            assert v5_session.last_error.startswith("connection closed before the broker answered: ")
            assert hint in v5_session.last_error
            assert len(_errors_about(caplog, v5_session)) == 1
        finally:
            v5.stop()
            v5_session.stop()

        v311 = MqttBus(MqttConfig(url=broker.url, protocol="3.1.1"), persistent_session=False)
        v311.start()
        try:
            assert v311.wait_connected(10), v311.last_error
            acked = threading.Event()
            v311.publish("seamline-test/v311", b"ok", on_acked=acked.set)
            assert acked.wait(10)
        finally:
            v311.stop()
    finally:
        broker.stop()


def test_a_username_from_the_environment_logs_in(secured_broker, monkeypatch):
    """mqtt.username: {env: NAME} (one file for processes that log in as different users): the variable's
    value is the user the broker sees, so the ACL of that user applies; unset, it is a clear ConfigError."""
    config = MqttConfig.model_validate(
        {**secured_broker.mqtt_config().model_dump(), "username": {"env": "SEAMLINE_TEST_MQTT_USER"}}
    )
    monkeypatch.setenv("SEAMLINE_TEST_MQTT_USER", secured_broker.username)
    bus = MqttBus(config, persistent_session=False)
    bus.start()
    outcomes = _Outcomes()
    try:
        assert bus.wait_connected(10), bus.last_error
        outcomes.publish(bus, f"{secured_broker.allowed_topic}/verdicts", b"allowed")
        assert wait_until(lambda: outcomes.by_payload.get(b"allowed") == "acked", timeout=10)
    finally:
        bus.stop()
    monkeypatch.delenv("SEAMLINE_TEST_MQTT_USER")
    with pytest.raises(ConfigError, match="SEAMLINE_TEST_MQTT_USER is not set"):
        MqttBus(config, persistent_session=False)
