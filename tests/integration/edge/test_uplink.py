"""The uplink against a real cloud ingress on a free port: in send order (live garments first), acked,
deduped, refused, resilient."""

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.storage.crop_store import LocalCropStore
from edge.crops import Crop
from edge.uplink.client import Uplink, UplinkConfig, insecure_channel_factory
from edge.uplink.convert import dropped_message, garment_message
from edge.uplink.spool import RecordKind, Spool
from seamline.domain import LineAction
from seamline.imaging import encode_jpeg
from seamline.inspection.v1 import inspection_pb2 as pb
from tests.fixtures.cloud import IngressThread
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
HELLO = pb.AgentHello(agent_id="edge-test", site_id="site1", line_id="line1", contract_version="v1")


def _garment(
    item_id: str, *, score: float = 0.8, jpeg: bytes | None = None, deadline_in: float = 5.0
) -> bytes:
    image = np.full((48, 64, 3), 128, np.uint8)
    crop = Crop(
        "v0-c0", 0, (10.0, 10.0, 40.0, 30.0), (0, 0, 64, 48), score, "defect", jpeg or encode_jpeg(image)
    )
    now = datetime.now(UTC)
    return garment_message(
        item_id=item_id,
        site_id="site1",
        line_id="line1",
        station_id="st1",
        captured_at=now,
        deadline_at=now + timedelta(seconds=deadline_in),
        view_sizes=[(720, 1280)],
        camera_ids=["top"],
        crops=[crop],
        detector_version="tiny@test",
    ).SerializeToString()


def _dropped(item_id: str, *, station_id: str = "st1") -> bytes:
    now = datetime.now(UTC)
    return dropped_message(
        item_id=item_id,
        site_id="site1",
        line_id="line1",
        station_id=station_id,
        captured_at=now,
        deadline_at=now + timedelta(seconds=5),
        dropped_at=now,
        reason="detector_behind",
        detail="detector behind the camera",
        line_action=LineAction.DIVERT_REVIEW,
    ).SerializeToString()


@pytest.fixture
def ingress(tmp_path):
    server = IngressThread(tmp_path / "cloud").start()
    yield server
    server.stop()


def _uplink(spool, address, refused=None, **config):
    uplink = Uplink(
        spool,
        insecure_channel_factory(address, max_message_bytes=8 << 20),
        HELLO,
        UplinkConfig(backoff_initial_s=0.05, backoff_max_s=0.5, **config),
        on_refused=(lambda i, c, r: refused.append((i, c, r))) if refused is not None else None,
    )
    uplink.start()
    return uplink


def test_spool_drains_in_order_and_everything_is_stored(tmp_path, ingress):
    spool = Spool(tmp_path / "spool.db")
    for i in range(40):
        spool.put(f"g{i:03d}", _garment(f"g{i:03d}"))
    uplink = _uplink(spool, ingress.address, max_in_flight=8)
    try:
        assert wait_until(lambda: len(spool) == 0)
    finally:
        uplink.stop()
    assert [r.item_id for r in ingress.accepted] == [f"g{i:03d}" for i in range(40)]
    assert ingress.audit.counts() == {"accepted": 40}
    row = ingress.audit.garment("g007")
    assert row["crops"][0]["uri"].startswith("file://") and row["detector_version"] == "tiny@test"


def test_resent_garment_is_acked_as_duplicate(tmp_path, ingress):
    spool = Spool(tmp_path / "spool.db")
    spool.put("dup", _garment("dup"))
    uplink = _uplink(spool, ingress.address)
    try:
        assert wait_until(lambda: len(spool) == 0)
        spool.put("dup", _garment("dup"))
        uplink.notify()
        assert wait_until(lambda: uplink.stats.duplicates == 1)
    finally:
        uplink.stop()
    assert len(ingress.accepted) == 1


def test_invalid_garment_is_refused_for_good_and_others_go_on(tmp_path, ingress):
    spool = Spool(tmp_path / "spool.db")
    refused = []
    spool.put("ok1", _garment("ok1"))
    spool.put("bad", _garment("bad", jpeg=encode_jpeg(np.zeros((64, 64, 3), np.uint8))[:300]))
    spool.put("nan", _garment("nan", score=float("nan")))
    spool.put("ok2", _garment("ok2"))
    uplink = _uplink(spool, ingress.address, refused=refused)
    try:
        assert wait_until(lambda: len(spool) == 0)
    finally:
        uplink.stop()
    assert [r.item_id for r in ingress.accepted] == ["ok1", "ok2"]
    reasons = {item: (code, reason) for item, code, reason in refused}
    assert reasons["bad"][0] == "REFUSAL_CODE_UNDECODABLE_IMAGE" and "crops[0].image" in reasons["bad"][1]
    assert reasons["nan"][0] == "REFUSAL_CODE_INVALID" and "detector_score nan" in reasons["nan"][1]


def test_drop_records_drain_with_the_garments_into_the_audit_store(tmp_path, ingress):
    spool = Spool(tmp_path / "spool.db")
    for i in range(12):
        if i % 3 == 1:
            spool.put(f"m{i:02d}", _dropped(f"m{i:02d}"), RecordKind.DROPPED)
        else:
            spool.put(f"m{i:02d}", _garment(f"m{i:02d}"))
    uplink = _uplink(spool, ingress.address, max_in_flight=4)
    try:
        assert wait_until(lambda: len(spool) == 0)
        spool.put("m01", _dropped("m01"), RecordKind.DROPPED)  # a re-send (say, after a lost ack)
        uplink.notify()
        assert wait_until(lambda: uplink.stats.duplicates == 1)
    finally:
        uplink.stop()
    assert ingress.audit.counts() == {"accepted": 8, "dropped_at_edge": 4}
    assert [r.item_id for r in ingress.accepted] == [f"m{i:02d}" for i in range(12) if i % 3 != 1]
    assert ingress.audit.garment("m04")["drop_reason"] == "detector_behind"


def test_a_drop_record_refused_for_good_leaves_the_spool_and_is_not_reported_as_a_garment(tmp_path, ingress):
    # A refused garment is reported so line control diverts it; a dropped one already has its command.
    spool = Spool(tmp_path / "spool.db")
    refused = []
    spool.put("d-bad", _dropped("d-bad", station_id="s" * 65), RecordKind.DROPPED)
    spool.put("g-ok", _garment("g-ok"))
    uplink = _uplink(spool, ingress.address, refused=refused)
    try:
        assert wait_until(lambda: len(spool) == 0)
    finally:
        uplink.stop()
    assert refused == [] and uplink.stats.refused == 1
    assert ingress.audit.counts() == {"accepted": 1}


def test_cloud_restart_mid_stream_loses_nothing(tmp_path):
    cloud = IngressThread(tmp_path / "cloud").start()
    port = cloud.port
    spool = Spool(tmp_path / "spool.db")
    uplink = _uplink(spool, cloud.address, ack_timeout_s=2)
    produced = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            item = f"r{i:04d}"
            spool.put(item, _garment(item))
            produced.append(item)
            uplink.notify()
            i += 1
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        assert wait_until(lambda: len(cloud.accepted) > 10)
        cloud.stop()
        time.sleep(2.0)  # cloud down: the spool grows
        assert len(spool) > 0 and not uplink.stats.connected
        cloud = IngressThread(tmp_path / "cloud", port=port).start()
        time.sleep(1.0)
        stop.set()
        producer.join()
        assert wait_until(lambda: len(spool) == 0, timeout=30)
    finally:
        stop.set()
        uplink.stop()
        cloud.stop()
    assert cloud.audit.counts()["accepted"] == len(produced)
    assert uplink.stats.reconnects >= 1


def _put(spool: Spool, item_id: str, deadline_in: float) -> None:
    """Spool a garment the way the agent does, its deadline ``deadline_in`` seconds from now."""
    spool.put(item_id, _garment(item_id, deadline_in=deadline_in), deadline_at=time.time() + deadline_in)


def test_after_an_outage_live_garments_go_first_then_the_backlog_oldest_first(tmp_path):
    cloud = IngressThread(tmp_path / "cloud").start()
    port = cloud.port
    spool = Spool(tmp_path / "spool.db")
    uplink = _uplink(spool, cloud.address, ack_timeout_s=2, live_margin_s=5.0)
    try:
        _put(spool, "before", 30)
        assert wait_until(lambda: len(spool) == 0 and uplink.stats.connected)
        cloud.stop()
        # While the cloud is down the line goes on: garments whose deadlines pass (their fail-safe command
        # went out) pile up between garments still on the belt.
        _put(spool, "b0", -20)
        _put(spool, "live-late", 60)
        _put(spool, "b1", -15)
        _put(spool, "too-close", 3)  # inside live_margin_s: no verdict could come back in time
        _put(spool, "live-soon", 30)
        _put(spool, "b2", -10)
        _put(spool, "live-mid", 45)
        assert wait_until(lambda: not uplink.stats.connected)
        cloud = IngressThread(tmp_path / "cloud", port=port).start()
        assert wait_until(lambda: len(spool) == 0)
    finally:
        uplink.stop()
        cloud.stop()
    assert [r.item_id for r in cloud.accepted] == [
        "live-soon",
        "live-mid",
        "live-late",
        "b0",
        "b1",
        "too-close",
        "b2",
    ]
    assert cloud.audit.counts() == {"accepted": 8}  # the first cloud's audit store is the same directory


def test_a_garment_captured_while_the_backlog_drains_overtakes_it(tmp_path, ingress):
    spool = Spool(tmp_path / "spool.db")
    for i in range(200):
        _put(spool, f"b{i:03d}", -60 + i * 0.1)
    window = 2
    uplink = _uplink(spool, ingress.address, max_in_flight=window)
    try:
        assert wait_until(lambda: len(ingress.accepted) >= 20)
        arrived_before = len(ingress.accepted)
        _put(spool, "live", 30)
        uplink.notify()
        assert wait_until(lambda: len(spool) == 0, timeout=60)
    finally:
        uplink.stop()
    order = [r.item_id for r in ingress.accepted]
    assert len(order) == 201 and len(set(order)) == 201  # at least once, and everything arrived
    # Ahead of it only what was already on the wire when it was spooled (at most one window, plus one window
    # the uplink may have been choosing at that moment), not the rest of the backlog.
    assert order.index("live") <= arrived_before + 2 * window, (order.index("live"), arrived_before)
    backlog = [item for item in order if item != "live"]
    assert backlog == sorted(backlog)  # the backlog itself still drains oldest first


class _FlakyCropStore(LocalCropStore):
    """Real files, but the cloud's storage is down for the first ``failures`` writes."""

    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def put(self, key: str, data: bytes, encoding: str) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("storage unavailable")
        return super().put(key, data, encoding)


def test_a_retryable_refusal_keeps_the_garment_and_what_follows_goes_on(tmp_path):
    cloud = IngressThread(tmp_path / "cloud", crop_store=_FlakyCropStore(tmp_path / "crops", 1)).start()
    spool = Spool(tmp_path / "spool.db")
    refused = []
    _put(spool, "first", 30)
    uplink = _uplink(spool, cloud.address, refused=refused, max_in_flight=1)
    try:
        assert wait_until(lambda: uplink.stats.sent == 1)
        _put(spool, "second", 40)  # behind "first" in the send order
        assert wait_until(lambda: len(spool) == 0)
    finally:
        uplink.stop()
        cloud.stop()
    # "first" was refused for now, kept and sent again after the backoff; "second" did not wait behind it
    assert [r.item_id for r in cloud.accepted] == ["second", "first"]
    assert uplink.stats.sent == 3 and refused == [] and uplink.stats.set_aside == 0


class _RefusingCropStore(LocalCropStore):
    """Real files, but writing one garment's crops fails every time (its storage path is broken)."""

    def __init__(self, root, poison: str) -> None:
        super().__init__(root)
        self.poison = poison

    def put(self, key: str, data: bytes, encoding: str) -> str:
        if f"/{self.poison}/" in key:
            raise OSError("this object cannot be written")
        return super().put(key, data, encoding)


def test_a_garment_refused_for_ever_is_set_aside_and_the_rest_flows(tmp_path):
    """The cloud refuses one garment as retryable for ever while it takes the others: after
    ``poison_after_attempts`` sends it is set aside (kept on disk, out of the send order), reported once,
    and every other garment, before and after it, reaches the cloud."""
    cloud = IngressThread(
        tmp_path / "cloud", crop_store=_RefusingCropStore(tmp_path / "crops", "g003")
    ).start()
    spool = Spool(tmp_path / "spool.db")
    set_aside = []
    for i in range(6):
        _put(spool, f"g{i:03d}", 60)
    uplink = Uplink(
        spool,
        insecure_channel_factory(cloud.address, max_message_bytes=8 << 20),
        HELLO,
        UplinkConfig(backoff_initial_s=0.05, backoff_max_s=0.2, max_in_flight=2, poison_after_attempts=3),
        on_set_aside=lambda item_id, reason: set_aside.append((item_id, reason)),
    )
    uplink.start()
    try:
        assert wait_until(lambda: len(spool) == 0 and set_aside, timeout=30), (len(spool), set_aside)
        for i in range(6, 10):  # later garments flow
            _put(spool, f"g{i:03d}", 60)
        uplink.notify()
        assert wait_until(lambda: len(spool) == 0 and len(cloud.accepted) == 9, timeout=30)
    finally:
        uplink.stop()
        cloud.stop()
    assert sorted(r.item_id for r in cloud.accepted) == [f"g{i:03d}" for i in range(10) if i != 3]
    assert [item for item, _ in set_aside] == ["g003"] and "UNAVAILABLE" in set_aside[0][1]
    assert spool.set_aside_items() == [("g003", set_aside[0][1])]
    assert spool.attempts_and_age("g003")[0] == 3
    assert spool.prune_set_aside(older_than=time.time() - 3600) == 0  # kept for the retention
    assert spool.prune_set_aside(older_than=time.time() + 1) == 1
    assert spool.set_aside_items() == []


def test_while_the_cloud_refuses_everything_nothing_is_set_aside(tmp_path):
    """Storage down for the first 12 writes: every garment is refused at least once, none for good."""
    cloud = IngressThread(tmp_path / "cloud", crop_store=_FlakyCropStore(tmp_path / "crops", 12)).start()
    spool = Spool(tmp_path / "spool.db")
    for i in range(4):
        _put(spool, f"g{i:03d}", 60)
    uplink = _uplink(spool, cloud.address, max_in_flight=4, poison_after_attempts=2)
    try:
        assert wait_until(lambda: len(spool) == 0, timeout=30)
    finally:
        uplink.stop()
        cloud.stop()
    assert len(cloud.accepted) == 4 and uplink.stats.set_aside == 0 and spool.set_aside_items() == []
    assert uplink.stats.sent >= 4 + 12


def test_a_cloud_that_does_not_serve_the_line_is_reported_once_and_not_hammered(
    tmp_path, caplog, monkeypatch
):
    """PERMISSION_DENIED (a line the cloud does not serve) needs a configuration change, not fast retries:
    one ERROR saying what to check, retries at the longest backoff, and the garment stays spooled."""
    # no jitter (each delay its full value), so counting retries tells the two backoffs apart every run
    monkeypatch.setattr("edge.uplink.client.random.uniform", lambda low, high: high)
    ingress = IngressThread(tmp_path / "cloud", lines=(("site1", "other-line"),)).start()
    spool = Spool(tmp_path / "spool.db")
    spool.put("g1", _garment("g1"))
    caplog.set_level(logging.WARNING, logger="edge.uplink.client")
    uplink = _uplink(spool, ingress.address, refused=[])
    try:
        time.sleep(3.0)
        reconnects, error = uplink.stats.reconnects, uplink.stats.last_error
    finally:
        uplink.stop()
        ingress.stop()
    assert error.startswith("PERMISSION_DENIED") and "not served" in error
    # at the longest backoff (0.5 s): tries at 0, 0.5, ... 3.0 s; doubling from 0.05 s would make 8-9
    assert reconnects <= 7
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cloud.lines" in errors[0], errors
    assert len(spool) == 1
