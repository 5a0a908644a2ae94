"""The audit store on SQLite (default) and PostgreSQL (by URL, when a server answers on 127.0.0.1:5432)."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from cloud.records import CropRecord, GarmentRecord
from cloud.storage.audit import AuditStore, garment_record, recorded_verdict
from tests.fixtures.messages import verdict

pytestmark = pytest.mark.integration


def _record(item_id: str) -> GarmentRecord:
    now = datetime.now(UTC)
    crop = CropRecord(
        "v0-c0", 0, (1.0, 2.0, 3.0, 4.0), (0.0, 0.0, 8.0, 8.0), 0.7, "defect", "jpeg", b"x", 8, 8
    )
    return GarmentRecord(
        item_id,
        "site1",
        "line1",
        "st1",
        "edge",
        now,
        None,
        now,
        "d@1",
        ((0, 1280, 720),),
        (crop,),
        sensor_readings=(("k", "v"),),
    )


def _exercise(store: AuditStore) -> None:
    assert store.accept(_record("a"), {"v0-c0": "file:///a"}) is True
    assert store.accept(_record("a"), {"v0-c0": "file:///a"}) is False  # idempotent
    store.accept(_record("b"), {"v0-c0": "file:///b"})
    assert store.pending() == ["a", "b"]
    assert recorded_verdict(store.garment("a")) is None  # not classified yet
    store.record_verdict(verdict(item_id="a", verdict_id="v1", priority="low"), review_priority="low")
    verdict_b = verdict(item_id="b", verdict_id="v2", priority="high")
    store.record_verdict(verdict_b, review_priority="high")
    assert [q["item_id"] for q in store.review_queue()] == ["b", "a"]  # high first
    store.mark_published("a")
    assert store.counts() == {"published": 1, "classified": 1}
    assert recorded_verdict(store.garment("a")) is None  # published: nothing left to send
    row = store.garment("b")
    assert row["verdict"]["decision"] == "review" and row["crops"][0]["box"] == [1.0, 2.0, 3.0, 4.0]
    assert recorded_verdict(row) == verdict_b
    assert row["sensor_readings"] == {"k": "v"}

    # a garment read back is the record ingress accepted, its crop now carrying the URI it was stored under
    record = _record("c")
    store.accept(record, {"v0-c0": "file:///c"})
    reloaded = garment_record(store.garment("c"), {"file:///c": b"x"}.__getitem__)
    assert reloaded == replace(record, crops=(replace(record.crops[0], uri="file:///c"),))


def test_sqlite(tmp_path):
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a' / 'audit.db'}")
    _exercise(store)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_postgresql(postgres_url):
    store = AuditStore.from_url(postgres_url)
    _exercise(store)
    store.engine.dispose()


def test_local_crop_store_round_trips_ids_that_urls_escape(tmp_path):
    from cloud.storage.crop_store import LocalCropStore

    store = LocalCropStore(tmp_path / "crops")
    uri = store.put("line1:st1:000042/v0-c:1", b"jpeg-bytes", "jpeg")
    assert "%3A" in uri and store.get(uri) == b"jpeg-bytes"
