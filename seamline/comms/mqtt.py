"""The MQTT bus every Seamline process uses (paho-mqtt, callback API v2).

* asynchronous connect with automatic reconnect (the broker may come up after us or restart under us);
* availability: a retained ``offline`` last will, ``online`` published by ``set_available(True)`` once the
  component is ready, and re-published on every reconnect;
* QoS 1 publishes with a per-message acknowledgement callback (the broker's PUBACK), queued by paho while the
  connection is down and sent on reconnect;
* subscriptions are renewed on every (re)connect; a persistent session (stable client id, clean session off)
  makes the broker keep QoS 1 messages for us while we are away.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from seamline.config.models import MqttConfig
from seamline.contract.mqtt import AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE
from seamline.optional import require

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]  # (topic, payload)


class MqttBus:
    """One MQTT connection for one component.

    Args:
        config: broker URL, credentials, TLS, keepalive.
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
        self._available = False
        self._subscriptions: dict[str, tuple[int, MessageHandler]] = {}
        self._pending_acks: dict[int, Callable[[], None]] = {}
        self._early_acks: set[int] = set()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._on_connect_hooks: list[Callable[[], None]] = []
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=not persistent_session,
            protocol=paho.MQTTv311,
        )
        self.client.max_queued_messages_set(0)  # unbounded: losing a queued line command is worse than memory
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        if config.username:
            password = config.password.resolve().get_secret_value() if config.password else None
            self.client.username_pw_set(config.username, password)
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
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; returns at once (see ``wait_connected``)."""
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every (re)connect, once subscriptions and availability are renewed."""
        self._on_connect_hooks.append(hook)

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline (retained), flush and disconnect."""
        if self.availability_topic and self._connected.is_set():
            done = threading.Event()
            self.publish(self.availability_topic, AVAILABILITY_OFFLINE, retain=True, on_acked=done.set)
            done.wait(timeout)
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
    ) -> None:
        """Publish; with QoS 1 paho keeps the message until the broker acks it, across reconnects.

        ``on_acked`` runs (on the network thread) when the broker acknowledged the message.
        """
        # paho calls on_publish while holding its own mutex, so never call paho while holding ours: publish
        # first, then match the ack, which may already have arrived (kept in _early_acks until claimed).
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (self._paho.MQTT_ERR_SUCCESS, self._paho.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"MQTT publish to {topic} failed: {self._paho.error_string(info.rc)}")
        if qos == 0:
            if on_acked is not None:
                on_acked()
            return
        callback = on_acked or _noop
        with self._lock:
            acked_already = info.mid in self._early_acks
            if acked_already:
                self._early_acks.discard(info.mid)
            else:
                self._pending_acks[info.mid] = callback
        if acked_already:
            callback()

    def subscribe(self, topic: str, handler: MessageHandler, *, qos: int = 1) -> None:
        """Deliver messages on ``topic`` to ``handler`` (on the network thread); renewed on reconnect."""
        self._subscriptions[topic] = (qos, handler)
        if self._connected.is_set():
            self.client.subscribe(topic, qos=qos)

    # paho callbacks ---------------------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            logger.warning("MQTT connect to %s refused: %s", self.config.url, reason_code)
            return
        logger.info("MQTT connected to %s as %s", self.config.url, self.client_id)
        for topic, (qos, _) in self._subscriptions.items():
            client.subscribe(topic, qos=qos)
        if self.availability_topic and self._available:
            self.publish(self.availability_topic, AVAILABILITY_ONLINE, retain=True)
        self._connected.set()
        for hook in self._on_connect_hooks:
            try:
                hook()
            except Exception:
                logger.exception("MQTT on-connect hook failed")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        logger.warning("MQTT disconnected from %s (%s); reconnecting", self.config.url, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            callback = self._pending_acks.pop(mid, None)
            if callback is None:
                self._early_acks.add(mid)
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("MQTT publish-ack callback failed")

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        for topic, (_, handler) in self._subscriptions.items():
            if self._paho.topic_matches_sub(topic, message.topic):
                try:
                    handler(message.topic, message.payload)
                except Exception:
                    logger.exception("handler for %s failed", message.topic)


def _noop() -> None:
    pass
