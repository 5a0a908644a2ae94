"""The verdict publisher: the contract's topics, one serialisation, in flight until the broker acks."""

import json

import pytest

from cloud.publishing.publisher import VerdictPublisher
from seamline.contract.messages import ReviewEvent
from tests.fixtures.messages import verdict


class RecordingBus:
    """Keeps what was published and its ack callback; a unit-test double for MqttBus."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent = []  # (topic, payload, qos, on_acked)
        self.refusals = []  # on_refused callbacks, in the same order

    def publish(self, topic, payload, *, qos=1, retain=False, on_acked=None, on_refused=None) -> None:
        if self.fail:
            raise RuntimeError("MQTT publish failed")
        self.sent.append((topic, payload, qos, on_acked))
        self.refusals.append(on_refused)


def test_a_verdict_goes_out_on_its_line_and_stays_in_flight_until_acked():
    bus, marked = RecordingBus(), []
    publisher = VerdictPublisher(bus, "root")
    v = verdict(site_id="s1", line_id="l2", verdict_id="v1")
    publisher.publish(v, on_acked=lambda: marked.append(publisher.in_flight()))
    ((topic, payload, qos, on_acked),) = bus.sent
    assert (topic, qos, json.loads(payload)) == ("root/s1/l2/verdicts", 1, v.model_dump(mode="json"))
    assert publisher.in_flight() == {"v1"}
    on_acked()
    assert marked == [{"v1"}]  # still in flight while it is being marked published
    assert publisher.in_flight() == set()


def test_a_failed_mark_still_leaves_flight_so_a_republish_retries_it():
    bus = RecordingBus()
    publisher = VerdictPublisher(bus, "root")

    def mark() -> None:
        raise RuntimeError("database down")

    publisher.publish(verdict(verdict_id="v1"), on_acked=mark)
    with pytest.raises(RuntimeError):
        bus.sent[0][3]()
    assert publisher.in_flight() == set()


def test_a_refused_verdict_leaves_flight_and_the_caller_hears_why():
    bus, reasons = RecordingBus(), []
    publisher = VerdictPublisher(bus, "root")
    publisher.publish(verdict(verdict_id="v1"), on_acked=lambda: None, on_refused=reasons.append)
    bus.refusals[0]("Not authorized")
    assert reasons == ["Not authorized"] and publisher.in_flight() == set()


def test_a_publish_that_fails_is_not_left_in_flight():
    publisher = VerdictPublisher(RecordingBus(fail=True), "root")
    with pytest.raises(RuntimeError):
        publisher.publish(verdict(verdict_id="v1"), on_acked=lambda: None)
    assert publisher.in_flight() == set()


def test_review_events_go_out_on_their_line():
    bus = RecordingBus()
    event = ReviewEvent(
        type="new", review_id="g1", item_id="g1", site_id="s1", line_id="l2", status="queued", priority="high"
    )
    VerdictPublisher(bus, "root").publish_review_event(event)
    assert [(t, p) for t, p, _, _ in bus.sent] == [("root/s1/l2/reviews", event.to_json())]
