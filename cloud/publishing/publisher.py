"""The one way verdicts (and review events) leave the cloud: ``VerdictPublisher`` over the MQTT bus.

A caller records a verdict durably before handing it over and passes an ``on_acked`` that marks it published
there. The publisher serialises the typed verdict once, sends it with QoS 1 on its line's verdict topic from
the contract, and keeps it as in flight until the broker acknowledges it. Paho keeps and re-sends what it was
given across reconnects, so a caller republishing what its store still holds as unacknowledged skips what is
in flight instead of piling up duplicates while the broker is down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from seamline.comms.mqtt import MqttBus
from seamline.contract.messages import ReviewEvent, Verdict
from seamline.contract.mqtt import LineTopics


class VerdictPublisher:
    """Publishes verdicts and review events for every line under one topic root.

    Args:
        bus: the component's MQTT connection.
        topic_root: the configured topic root (``mqtt.topic_root``).
    """

    def __init__(self, bus: MqttBus, topic_root: str) -> None:
        self.bus = bus
        self.topic_root = topic_root
        self._in_flight: set[str] = set()  # verdict ids handed to paho and not yet acknowledged
        self._lock = threading.Lock()

    def publish(
        self,
        verdict: Verdict,
        *,
        on_acked: Callable[[], None],
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """Send a recorded verdict (QoS 1); ``on_acked`` runs on the network thread when the broker has it,
        ``on_refused`` (with the broker's reason) when the broker refuses it, e.g. by its ACL."""
        verdict_id = verdict.verdict_id

        def acked() -> None:
            try:
                on_acked()
            finally:  # out of flight only once marked, so a republish in between does not send it again
                with self._lock:
                    self._in_flight.discard(verdict_id)

        def refused(reason: str) -> None:
            with self._lock:
                self._in_flight.discard(verdict_id)
            if on_refused is not None:
                on_refused(reason)

        with self._lock:
            self._in_flight.add(verdict_id)
        try:
            self.bus.publish(
                self._topics(verdict.site_id, verdict.line_id).verdicts,
                verdict.to_json(),
                qos=1,
                on_acked=acked,
                on_refused=refused,
            )
        except Exception:
            with self._lock:
                self._in_flight.discard(verdict_id)
            raise

    def in_flight(self) -> set[str]:
        """The ids of verdicts handed to paho and not yet acknowledged by the broker."""
        with self._lock:
            return set(self._in_flight)

    def publish_review_event(self, event: ReviewEvent) -> None:
        """Announce a change in the review queue on its line's review topic (QoS 1, not retained)."""
        self.bus.publish(self._topics(event.site_id, event.line_id).reviews, event.to_json())

    def _topics(self, site_id: str, line_id: str) -> LineTopics:
        return LineTopics(self.topic_root, site_id, line_id)
