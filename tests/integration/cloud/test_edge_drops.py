"""Records of garments dropped at the edge, against a real ingress on a free port: stored before the ack, once
per garment, refused precisely when broken, never classified."""

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from seamline.inspection.v1 import inspection_pb2 as pb
from tests.fixtures.cloud import IngressThread
from tests.integration.cloud.test_ingress_bad_input import Stream, garment

pytestmark = pytest.mark.integration
CAPTURED = datetime(2026, 11, 25, 9, 0, 0, 123000, tzinfo=UTC)


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def dropped(item_id="drop-1", **changes) -> pb.UplinkMessage:
    record = pb.GarmentDropped(
        item_id=item_id,
        site_id="site1",
        line_id="line1",
        station_id="st1",
        capture_time=_ts(CAPTURED),
        deadline=_ts(CAPTURED + timedelta(seconds=2.7)),
        dropped_at=_ts(CAPTURED + timedelta(seconds=0.4)),
        reason=pb.DROP_REASON_DETECTOR_BEHIND,
        detail="detector behind the camera: dropped as the oldest of 8 garments waiting for it",
        line_action=pb.LINE_ACTION_DIVERT_REVIEW,
    )
    for name, value in changes.items():
        if value is None:
            record.ClearField(name)
        else:
            setattr(record, name, value)
    return pb.UplinkMessage(dropped=record)


@pytest.fixture
def ingress(tmp_path):
    server = IngressThread(tmp_path / "cloud").start()
    yield server
    server.stop()


def test_a_drop_record_is_stored_then_acked_and_never_classified(ingress):
    stream = Stream(ingress.address)
    try:
        answer = stream.send(dropped("drop-1"))
    finally:
        stream.close()
    assert answer.WhichOneof("kind") == "ack"
    assert answer.ack.item_id == "drop-1" and not answer.ack.duplicate
    row = ingress.audit.garment("drop-1")
    assert row["status"] == "dropped_at_edge" and row["crops"] == [] and row["views"] == []
    assert (row["drop_reason"], row["drop_line_action"]) == ("detector_behind", "divert_review")
    assert row["drop_detail"].startswith("detector behind the camera")
    assert row["agent_id"] == "edge-bad" and row["station_id"] == "st1"
    assert row["captured_at"] == CAPTURED
    assert row["deadline_at"] == CAPTURED + timedelta(seconds=2.7)
    assert row["dropped_at"] == CAPTURED + timedelta(seconds=0.4)
    # nothing to classify: not handed on, and not work a restarted service resumes
    assert ingress.accepted == [] and ingress.audit.pending() == []
    assert ingress.servicer.drops_recorded == 1


def test_a_resent_drop_record_is_acked_as_a_duplicate_and_stored_once(ingress):
    stream = Stream(ingress.address)
    other = Stream(ingress.address)  # a re-send after a reconnect arrives on a new stream
    try:
        first = stream.send(dropped("drop-2"))
        again = other.send(dropped("drop-2", detail="sent again"))
    finally:
        stream.close()
        other.close()
    assert not first.ack.duplicate and again.ack.duplicate and again.ack.item_id == "drop-2"
    assert ingress.audit.counts() == {"dropped_at_edge": 1}
    assert ingress.audit.garment("drop-2")["drop_detail"].startswith("detector behind")


def test_a_drop_record_for_a_garment_already_stored_keeps_the_garment(ingress):
    # One row per garment: the edge may record a drop for a garment whose crops reached the cloud.
    stream = Stream(ingress.address)
    try:
        assert stream.send(pb.UplinkMessage(garment=garment(item_id="both-1"))).WhichOneof("kind") == "ack"
        answer = stream.send(dropped("both-1", reason=pb.DROP_REASON_EDGE_ERROR))
    finally:
        stream.close()
    assert answer.ack.duplicate
    assert ingress.audit.counts() == {"accepted": 1}
    assert ingress.audit.garment("both-1")["drop_reason"] is None


def test_a_reason_newer_than_the_cloud_is_stored_by_its_number_not_refused(ingress):
    stream = Stream(ingress.address)
    try:
        answer = stream.send(dropped("drop-new", reason=7, deadline=None, dropped_at=None))
    finally:
        stream.close()
    assert answer.WhichOneof("kind") == "ack"
    row = ingress.audit.garment("drop-new")
    assert row["drop_reason"] == "unknown_7"
    assert row["deadline_at"] is None and row["dropped_at"] is None


INVALID = [
    # (changes, fragment of the reason)
    ({"item_id": ""}, "item_id"),
    ({"item_id": "bad id"}, "item_id"),
    ({"item_id": ".."}, "is only dots"),
    ({"site_id": "site2"}, "differ from the stream's hello"),
    ({"line_id": "other"}, "differ from the stream's hello"),
    ({"station_id": "s" * 65}, "station_id"),
    ({"capture_time": None}, "capture_time is missing"),
    ({"reason": pb.DROP_REASON_UNSPECIFIED}, "reason is missing (DROP_REASON_UNSPECIFIED)"),
    ({"line_action": pb.LINE_ACTION_UNSPECIFIED}, "line_action is missing (LINE_ACTION_UNSPECIFIED)"),
    ({"detail": "d" * 1001}, "detail is 1001 characters, over 1000"),
]


def test_an_invalid_drop_record_is_refused_for_good_and_the_stream_goes_on(ingress):
    stream = Stream(ingress.address)
    try:
        for n, (changes, fragment) in enumerate(INVALID):
            item_id = changes.pop("item_id", f"bad-{n}")
            answer = stream.send(dropped(item_id, **changes))
            assert answer.WhichOneof("kind") == "refusal", (n, fragment)
            refusal = answer.refusal
            assert refusal.code == pb.REFUSAL_CODE_INVALID and fragment in refusal.reason, (n, refusal)
            assert refusal.retryable is False
            # the same stream records a good drop next
            assert stream.send(dropped(f"good-{n}")).WhichOneof("kind") == "ack"
        bad_timestamp = dropped("bad-time")
        bad_timestamp.dropped.capture_time.seconds = 10**12  # past year 9999
        refusal = stream.send(bad_timestamp).refusal
        assert (
            refusal.code == pb.REFUSAL_CODE_INVALID
            and "capture_time: not a valid timestamp" in refusal.reason
        )
    finally:
        stream.close()
    assert ingress.audit.counts() == {"dropped_at_edge": len(INVALID)}
