"""The MQTT bus every Seamline process uses (paho-mqtt, callback API v2).

* asynchronous connect with automatic reconnect (the broker may come up after us or restart under us);
* availability: a retained ``offline`` last will, ``online`` published by ``set_available(True)`` once the
  component is ready, and re-published on every reconnect;
* QoS 1 publishes with a per-message outcome: ``on_acked`` when the broker took the message, ``on_refused``
  when it refused it (an ACL denial). Paho queues messages while the connection is down and sends them on
  reconnect;
* subscriptions are renewed on every (re)connect; a persistent session (stable client id, no clean start,
  kept by the broker for ``SESSION_EXPIRY_S``) makes the broker keep QoS 1 messages for us while we are away;
* the link's state for a service's health: ``connected``, ``last_error`` (why not, in words) and
  ``on_state_change`` hooks. A failure is logged at ERROR once per distinct reason, not on every retry.

MQTT 5 by default (``MqttConfig.protocol``): only an MQTT 5 PUBACK carries a reason code. A broker that
refuses a 3.1.1 publish (Mosquitto's ACL) drops it and acknowledges it all the same, so over 3.1.1 a refused
message reads as delivered; 3.1.1 is for brokers without MQTT 5 (the embedded test broker, amqtt).
"""

from __future__ import annotations

import logging
import math
import ssl
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from seamline.config.models import MqttConfig
from seamline.contract.mqtt import AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE
from seamline.optional import require

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]  # (topic, payload)
StateHook = Callable[[bool, str | None], None]  # (connected, last_error)

# How long the broker keeps a persistent session (subscriptions, queued QoS 1 messages) after we disconnect:
# long enough for a restart, a deployment or a broker fail-over; bounded, so the sessions of client ids that
# never come back (a replaced edge box) do not hold messages on the broker for ever.
SESSION_EXPIRY_S = 3600
RECONNECT_DELAY_S = (1, 5)  # paho's reconnect back-off: from 1 s, doubling, at most 5 s


@dataclass(frozen=True)
class _Pending:
    """A QoS 1 publish waiting for the broker's PUBACK."""

    topic: str
    on_acked: Callable[[], None] | None
    on_refused: Callable[[str], None] | None


class MqttBus:
    """One MQTT connection for one component.

    Args:
        config: broker URL, credentials, TLS, keepalive, protocol version.
        client_id: stable per component instance (a persistent session is keyed by it); None: random.
        availability_topic: where this component's online/offline state goes (retained), or None.
        persistent_session: keep subscriptions and queued QoS 1 messages across disconnects.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str | None = None,
        availability_topic: str | None = None,
        persistent_session: bool = True,
    ) -> None:
        paho = require("paho.mqtt.client", "MQTT", extra="edge", package="paho-mqtt")
        self._paho = paho
        self.config = config
        self.client_id = client_id or f"{config.client_id_prefix}-{uuid.uuid4().hex[:12]}"
        self.availability_topic = availability_topic
        self.persistent_session = persistent_session
        self._available = False
        self._subscriptions: dict[str, tuple[int, MessageHandler]] = {}
        self._pending: dict[int, _Pending] = {}
        self._early_acks: dict[int, object] = {}  # mid -> reason code of a PUBACK that beat its registration
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._connack_refused = False  # set by a refusing CONNACK, cleared by the disconnect that follows
        self._last_error: str | None = None
        self._on_connect_hooks: list[Callable[[], None]] = []
        self._state_hooks: list[StateHook] = []
        if config.protocol == "5":
            # MQTT 5 has no clean-session flag: the session's life is clean_start (in start) plus its expiry.
            self.client = paho.Client(
                paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5
            )
        else:
            self.client = paho.Client(
                paho.CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                clean_session=not persistent_session,
                protocol=paho.MQTTv311,
            )
        self.client.max_queued_messages_set(0)  # unbounded: losing a queued line command is worse than memory
        self.client.reconnect_delay_set(min_delay=RECONNECT_DELAY_S[0], max_delay=RECONNECT_DELAY_S[1])
        if config.username:
            username = config.username
            if not isinstance(username, str):
                username = username.resolve().get_secret_value()
            password = config.password.resolve().get_secret_value() if config.password else None
            self.client.username_pw_set(username, password)
        if config.url.startswith("mqtts://"):
            tls = config.tls
            self.client.tls_set(
                ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
                certfile=str(tls.cert_file) if tls and tls.cert_file else None,
                keyfile=str(tls.key_file) if tls and tls.key_file else None,
            )
        if availability_topic:
            self.client.will_set(availability_topic, AVAILABILITY_OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; returns at once (see ``wait_connected``, ``last_error``)."""
        if self.config.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = None  # MQTT 5's default: the session ends with the connection
            if self.persistent_session:
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
            self.client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=not self.persistent_session,
                properties=properties,
            )
        else:
            self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def last_error(self) -> str | None:
        """Why the bus is not connected, in words; None while connected.

        E.g. ``connect refused: Bad user name or password``, ``TLS handshake failed: [SSL:
        CERTIFICATE_VERIFY_FAILED] ...``, ``cannot reach host:port: [Errno 111] Connection refused``, or
        ``disconnected: ...`` while it reconnects after a drop. None also before the first attempt's outcome.
        """
        return self._last_error

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every (re)connect, once subscriptions and availability are renewed."""
        self._on_connect_hooks.append(hook)

    def on_state_change(self, hook: StateHook) -> None:
        """Run ``hook(connected, last_error)`` when the link comes up, goes down, or fails for a new reason.

        It runs on paho's network thread: keep it short (flip a health status, set a gauge). ``stop()`` does
        not call it.
        """
        self._state_hooks.append(hook)

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), flush and disconnect."""
        if self.availability_topic and self._connected.is_set():
            done = threading.Event()
            self.publish(
                self.availability_topic,
                AVAILABILITY_OFFLINE,
                retain=True,
                on_acked=done.set,
                on_refused=lambda reason: done.set(),
            )
            done.wait(timeout)
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    # availability ----------------------------------------------------------------------------------------

    def set_available(self, online: bool) -> None:
        """Publish (retained) whether this component is ready; remembered and re-sent on reconnect."""
        self._available = online
        if self.availability_topic:
            self.publish(
                self.availability_topic, AVAILABILITY_ONLINE if online else AVAILABILITY_OFFLINE, retain=True
            )

    # publish / subscribe -----------------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        on_acked: Callable[[], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        expiry_s: float | None = None,
    ) -> None:
        """Publish with QoS 1; paho keeps the message until the broker answers it, across reconnects.

        ``expiry_s`` (MQTT 5): the broker discards the message if it cannot deliver it to a subscriber within
        that many seconds (rounded up to whole seconds, the protocol's unit); ignored over MQTT 3.1.1.

        Exactly one of the callbacks runs (on the network thread) when the broker answers: ``on_acked`` when
        it took the message, ``on_refused(reason)`` when its PUBACK says it did not (MQTT 5 only), e.g.
        ``"Not authorized (0x87)"``. Without ``on_refused`` a refusal is logged at ERROR with the topic.
        Neither runs while the broker has not answered (the connection is down): paho sends it again then.

        ``qos`` must be 1, the level every Seamline event uses: QoS 0 gets no answer, and paho ignores the
        reason code of a QoS 2 PUBREC, so a refusal would go unnoticed there.
        """
        if qos != 1:
            raise ValueError(f"MqttBus publishes with QoS 1 only, not {qos}")
        # paho calls on_publish while holding its own mutex, so never call paho while holding ours: publish
        # first, then match the answer, which may already have arrived (kept in _early_acks until claimed).
        properties = None
        if expiry_s is not None and self.config.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = max(1, math.ceil(expiry_s))
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc not in (self._paho.MQTT_ERR_SUCCESS, self._paho.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"MQTT publish to {topic} failed: {self._paho.error_string(info.rc)}")
        pending = _Pending(topic, on_acked, on_refused)
        with self._lock:
            reason_code = self._early_acks.pop(info.mid, None)
            if reason_code is None:
                self._pending[info.mid] = pending
        if reason_code is not None:
            self._settle(pending, reason_code)

    def subscribe(self, topic: str, handler: MessageHandler, *, qos: int = 1) -> None:
        """Deliver messages on ``topic`` to ``handler`` (on the network thread); renewed on reconnect."""
        self._subscriptions[topic] = (qos, handler)
        if self._connected.is_set():
            self.client.subscribe(topic, qos=qos)

    # link state -------------------------------------------------------------------------------------------

    def _fail(self, error: str, level: int = logging.ERROR) -> None:
        """Record why the bus is not connected; log it and tell the hooks only when the reason is new."""
        with self._lock:
            if error == self._last_error:
                return  # paho retries every few seconds: the same reason again is not news
            self._last_error = error
        logger.log(level, "MQTT %s as %s: %s (retrying)", self.config.url, self.client_id, error)
        self._notify_state()

    def _notify_state(self) -> None:
        connected, error = self.connected, self._last_error
        for hook in self._state_hooks:
            try:
                hook(connected, error)
            except Exception:
                logger.exception("MQTT state-change hook failed")

    def _protocol_hint(self) -> str:
        """What to try when a broker refuses or drops our CONNECT for no reason it names."""
        if self.config.protocol == "5":
            return ' (a broker without MQTT 5 does this: then set mqtt.protocol to "3.1.1")'
        return ""

    # paho callbacks ---------------------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            self._connack_refused = True  # the disconnect that follows is this refusal, already reported
            hint = self._protocol_hint() if str(reason_code) == "Unsupported protocol version" else ""
            self._fail(f"connect refused: {reason_code}{hint}")
            return
        logger.info(
            "MQTT connected to %s as %s (MQTT %s)", self.config.url, self.client_id, self.config.protocol
        )
        for topic, (qos, _) in self._subscriptions.items():
            client.subscribe(topic, qos=qos)
        if self.availability_topic and self._available:
            self.publish(self.availability_topic, AVAILABILITY_ONLINE, retain=True)
        with self._lock:
            self._last_error = None
        self._connected.set()
        self._notify_state()
        for hook in self._on_connect_hooks:
            try:
                hook()
            except Exception:
                logger.exception("MQTT on-connect hook failed")

    def _on_connect_fail(self, client, userdata) -> None:  # type: ignore[no-untyped-def]
        # paho's network loop catches the OSError of a failed connect (refused TCP, TLS handshake) and calls
        # this from inside its ``except`` block without passing the exception on: the exception being
        # handled is that error.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError):  # SSLCertVerificationError: an unknown CA, a wrong host name
            self._fail(f"TLS handshake failed: {exc}")
        elif exc is not None:
            self._fail(f"cannot reach {self.config.host}:{self.config.port}: {exc}")
        else:
            self._fail("connect failed (paho gave no reason)")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        if was_connected:
            self._fail(f"disconnected: {reason_code}", level=logging.WARNING)
        elif not self._connack_refused:
            # The broker closed the connection without answering the CONNECT (amqtt does so to an MQTT 5
            # CONNECT with properties).
            self._fail(f"connection closed before the broker answered: {reason_code}{self._protocol_hint()}")
        self._connack_refused = False

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            pending = self._pending.pop(mid, None)
            if pending is None:
                self._early_acks[mid] = reason_code
        if pending is not None:
            self._settle(pending, reason_code)

    def _settle(self, pending: _Pending, reason_code) -> None:  # type: ignore[no-untyped-def]
        """Run the publish's callback for the broker's answer."""
        try:
            if not reason_code.is_failure:
                if pending.on_acked is not None:
                    pending.on_acked()
                return
            reason = f"{reason_code} (0x{reason_code.value:02x})"
            if pending.on_refused is not None:
                pending.on_refused(reason)
            else:
                logger.error("MQTT broker refused the publish to %s: %s", pending.topic, reason)
        except Exception:
            logger.exception("MQTT publish callback failed for %s", pending.topic)

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        for topic, (_, handler) in self._subscriptions.items():
            if self._paho.topic_matches_sub(topic, message.topic):
                try:
                    handler(message.topic, message.payload)
                except Exception:
                    logger.exception("handler for %s failed", message.topic)
