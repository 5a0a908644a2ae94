"""The audit store on SQLite (default) and PostgreSQL (by URL; see tests/fixtures/postgres.py)."""

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

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


def _exercise_leases(store: AuditStore) -> None:
    """Unfinished garments are held by one owner at a time; a lapsed or released lease is claimable."""
    now = datetime.now(UTC)
    store.accept(_record("held"), {"v0-c0": "file:///h"}, owner="r1", lease_s=60)
    store.accept(_record("lapsed"), {"v0-c0": "file:///l"}, owner="r1", lease_s=0)
    store.accept(replace(_record("live"), deadline_at=now + timedelta(seconds=60)), {"v0-c0": "file:///v"})
    store.accept(_record("done"), {"v0-c0": "file:///d"})
    store.record_verdict(verdict(item_id="done", verdict_id="vd", priority="low"))
    store.mark_published("done")
    store.accept(_record("to-publish"), {"v0-c0": "file:///p"})
    store.record_verdict(verdict(item_id="to-publish", verdict_id="vp", priority="low"))

    # live deadline first; published and held garments are not taken; a classified one is (to publish)
    assert store.claim("r2", lease_s=60) == ["live", "lapsed", "to-publish"]
    assert store.claim("r3", lease_s=60) == []  # nothing twice
    store.renew("r1", ["held"], lease_s=0)  # r1 stops holding it in time
    assert store.claim("r3", lease_s=60) == ["held"]
    assert store.release("r2") == 3  # r2 starts again under its own name: its garments are free at once
    assert sorted(store.claim("r2", lease_s=60)) == ["lapsed", "live", "to-publish"]
    store.mark_published("to-publish")
    assert store.release("r2") == 2  # a published garment holds no lease


def test_leases_on_sqlite(tmp_path):
    _exercise_leases(AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.db'}"))


def test_leases_on_postgresql(postgres_url):
    store = AuditStore.from_url(postgres_url)
    _exercise_leases(store)
    store.engine.dispose()


def test_two_replicas_claiming_at_once_never_share_a_garment(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    first, second = AuditStore.from_url(url), AuditStore.from_url(url)
    for i in range(200):
        first.accept(_record(f"g{i:03d}"), {"v0-c0": f"file:///{i}"})
    taken: dict[str, list[str]] = {"a": [], "b": []}

    def sweep(store: AuditStore, owner: str) -> None:
        while batch := store.claim(owner, lease_s=60, limit=7):
            taken[owner].extend(batch)

    threads = [
        threading.Thread(target=sweep, args=(first, "a")),
        threading.Thread(target=sweep, args=(second, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(taken["a"]) & set(taken["b"])
    assert len(taken["a"]) + len(taken["b"]) == 200


def _exercise_verdict_written_once(url: str) -> None:
    """Two replicas classify the same garment at once, to different answers: one verdict is stored, both get
    it back to publish, and the review queue holds the garment once."""
    first, second = AuditStore.from_url(url), AuditStore.from_url(url)
    ids = [f"w{i:02d}" for i in range(40)]
    for item_id in ids:
        first.accept(_record(item_id), {"v0-c0": f"file:///{item_id}"})
    published: dict[str, list[str]] = {item_id: [] for item_id in ids}
    barrier = threading.Barrier(2)

    def classify(store: AuditStore, answer: str) -> None:
        barrier.wait()
        for item_id in ids:
            mine = verdict(item_id=item_id, verdict_id=f"{answer}-{item_id}", decision=answer)
            priority = "low" if answer == "review" else None
            published[item_id].append(store.record_verdict(mine, review_priority=priority).verdict_id)

    threads = [
        threading.Thread(target=classify, args=(first, "review")),
        threading.Thread(target=classify, args=(second, "reject")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for item_id in ids:
        stored = recorded_verdict(first.garment(item_id))
        assert published[item_id] == [stored.verdict_id] * 2, (item_id, published[item_id])
    queued = [q["item_id"] for q in first.review_queue(limit=1000)]
    # the garments whose stored verdict routes them to people are queued, once each; the others not at all
    assert sorted(queued) == sorted(i for i in ids if published[i][0].startswith("review-"))
    # a published garment keeps its verdict: a late classification gets it back, not a new one
    first.mark_published(ids[0])
    late = second.record_verdict(verdict(item_id=ids[0], verdict_id="late"), review_priority="low")
    assert late.verdict_id == published[ids[0]][0]
    with pytest.raises(LookupError, match="not in the audit store"):
        first.record_verdict(verdict(item_id="never-accepted", verdict_id="x"))
    # a replica renewing a lease it lost is told so
    first.accept(_record("kept"), {"v0-c0": "file:///k"}, owner="r1", lease_s=0)
    assert "kept" in second.claim("r2", lease_s=60, limit=1000)
    assert first.renew("r1", ["kept"], lease_s=60) == {"kept"}
    assert second.renew("r2", ["kept"], lease_s=60) == set()
    first.engine.dispose()
    second.engine.dispose()


def test_a_verdict_is_written_once_per_garment_on_sqlite(tmp_path):
    _exercise_verdict_written_once(f"sqlite:///{tmp_path / 'audit.db'}")


def test_a_verdict_is_written_once_per_garment_on_postgresql(postgres_url):
    _exercise_verdict_written_once(postgres_url)


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


def test_an_embedded_postgresql_stands_in_where_no_server_answers(monkeypatch):
    """A fresh machine has no PostgreSQL on :5432: the PostgreSQL tests then run on the embedded one."""
    import harness.postgres as harness_postgres
    from seamline.localbroker import free_port

    monkeypatch.setattr(
        harness_postgres, "ADMIN_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    )
    with harness_postgres.fresh_postgres_database() as url:
        assert url is not None and "host=" in url  # the embedded server's Unix socket
        store = AuditStore.from_url(url)
        _exercise(store)
        assert store.engine.dialect.name == "postgresql"
        store.engine.dispose()
