"""Deleting garments, on request and after ``storage.retention_days``, on SQLite and PostgreSQL, with crops in
files and in S3 (the tests' rclone S3 server): everything of a deleted garment goes, the audit trail keeps
the deletion, and nothing a person is still to decide is touched."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
import yaml

from cloud.config import CloudConfig
from cloud.service import CloudService
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import crop_store_from_url
from cloud.storage.retention import DeletionRefused, Retention
from cloud.storage.tables import crops, garments, review_items, review_sessions, verified_labels
from harness.review import queue_garments
from seamline.clock import utcnow
from seamline.config.models import SeamlineConfig
from tests.integration.cli.test_validate_config import _run
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite+files", "postgresql+s3"])
def stores(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite+files":
        audit_url, crop_url = f"sqlite:///{tmp_path / 'audit.db'}", str(tmp_path / "crops")
    else:
        audit_url = request.getfixturevalue("postgres_url")
        crop_url = request.getfixturevalue("s3_server").crop_store_url("retention", "crops")
    store = AuditStore.from_url(audit_url)
    yield store, crop_store_from_url(crop_url), audit_url, crop_url
    store.engine.dispose()


def _finish(store: AuditStore, item_id: str, *, days_ago: float, decided: bool) -> None:
    """The garment's verdict is out; it was received ``days_ago``; a person decided it (or not yet)."""
    with store.engine.begin() as conn:
        conn.execute(
            garments.update()
            .where(garments.c.item_id == item_id)
            .values(status="published", received_at=utcnow() - timedelta(days=days_ago))
        )
        if decided:
            conn.execute(
                review_items.update().where(review_items.c.item_id == item_id).values(status="decided")
            )
            conn.execute(
                verified_labels.insert().values(
                    item_id=item_id,
                    region_id="r0",
                    view_index=0,
                    crop_id="c0",
                    box=[1.0, 1.0, 5.0, 5.0],
                    type="hole",
                    severity="severe",
                    source="review",
                    reviewer_id="alice",
                    verified_at=utcnow(),
                )
            )


def _crop_uris(store: AuditStore, item_id: str) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(crops.c.uri).where(crops.c.item_id == item_id))]


def _rows(store: AuditStore, table: sa.Table, item_id: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.item_id == item_id)
        ).scalar()


def _exists(crop_store, uri: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        crop_store.get(uri)
        return True
    except Exception:
        return False


def test_the_sweep_deletes_what_is_past_retention_and_keeps_what_a_person_still_decides(stores):
    store, crop_store, *_ = stores
    old_done, old_waiting, new_done = queue_garments(store, crop_store, 3, prefix="ret")
    _finish(store, old_done, days_ago=40, decided=True)
    _finish(store, old_waiting, days_ago=40, decided=False)
    _finish(store, new_done, days_ago=1, decided=True)
    uris = {item: _crop_uris(store, item) for item in (old_done, old_waiting, new_done)}
    assert all(_exists(crop_store, u) for us in uris.values() for u in us)

    retention = Retention(store.engine, crop_store)
    result = retention.sweep(timedelta(days=30))
    assert (result.garments, result.crops, result.pending) == (1, 2, 0)
    assert not store.has(old_done)
    for table in (crops, review_items, verified_labels):
        assert _rows(store, table, old_done) == 0, table.name
    assert not any(_exists(crop_store, u) for u in uris[old_done])
    # kept: a person is still to decide it, and the recent one
    assert store.has(old_waiting) and store.has(new_done)
    assert all(_exists(crop_store, u) for u in uris[old_waiting] + uris[new_done])
    trail = retention.deletion(old_done)
    assert trail["deleted_by"] == "retention" and trail["crops_deleted_at"] is not None
    assert retention.sweep(timedelta(days=30)).garments == 0  # nothing more is due


def test_a_crop_store_that_is_down_leaves_the_deletion_pending_until_the_next_sweep(stores):
    store, crop_store, *_ = stores
    (item,) = queue_garments(store, crop_store, 1, prefix="down")
    _finish(store, item, days_ago=40, decided=True)
    uris = _crop_uris(store, item)

    class Down:
        def delete(self, uri: str) -> None:
            raise OSError("store unreachable")

    assert Retention(store.engine, Down()).sweep(timedelta(days=30)).pending == 2  # type: ignore[arg-type]
    assert not store.has(item) and all(_exists(crop_store, u) for u in uris)
    again = Retention(store.engine, crop_store).sweep(timedelta(days=30))
    assert (again.crops, again.pending) == (2, 0)
    assert not any(_exists(crop_store, u) for u in uris)


def test_expired_review_sessions_are_forgotten(stores):
    store, crop_store, *_ = stores
    from cloud.review.auth import Reviewers

    reviewers = Reviewers(store.engine, session_ttl=timedelta(milliseconds=300))
    reviewers.add("alice", "review-pass-1")
    reviewers.open_session("alice")
    time.sleep(0.4)
    assert Retention(store.engine, crop_store).sweep(None).sessions == 1
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(review_sessions)).scalar() == 0


def test_seamline_data_delete(stores, tmp_path):
    store, crop_store, audit_url, crop_url = stores
    done, waiting = queue_garments(store, crop_store, 2, prefix="cli")
    _finish(store, done, days_ago=0, decided=True)
    _finish(store, waiting, days_ago=0, decided=False)
    uris = _crop_uris(store, done)
    config = tmp_path / "seamline.yaml"
    config.write_text(yaml.safe_dump({"cloud": {"audit_url": audit_url, "crop_store": crop_url}}))
    result = _run(
        "data", "delete", done, "--config", str(config), "--by", "dpo@example", "--reason", "privacy"
    )
    assert result.returncode == 0, result.stderr
    assert '"crops": 2' in result.stdout
    assert not store.has(done) and not any(_exists(crop_store, u) for u in uris)
    trail = Retention(store.engine, crop_store).deletion(done)
    assert (trail["deleted_by"], trail["reason"]) == ("dpo@example", "privacy")

    for item, fragment in (
        (waiting, "waiting for a person"),
        (done, "was deleted already"),
        ("no-such-item", "no garment 'no-such-item'"),
    ):
        refused = _run("data", "delete", item, "--config", str(config))
        assert refused.returncode == 2 and fragment in refused.stderr, (item, refused.stderr)
    assert store.has(waiting)
    with pytest.raises(DeletionRefused, match="waiting for a person"):
        Retention(store.engine, crop_store).delete(waiting, "x", "y")


def test_the_cloud_service_sweeps_by_its_configuration(tmp_path, mqtt_broker):
    config = SeamlineConfig.model_validate(
        {
            "mqtt": {"url": mqtt_broker.url, "topic_root": f"seamline-ret{time.time_ns()}"},
            "grpc": {"listen_address": "127.0.0.1:0"},
            "storage": {"data_dir": str(tmp_path / "data"), "retention_days": 30},
        }
    )
    cloud = CloudConfig.model_validate(
        {
            "lines": [{"site_id": "s1", "line_id": "l1"}],
            "classifier": {"base_url": "http://127.0.0.1:9/v1", "retries": 0},
            "retention_sweep_interval_s": 0.2,
        }
    )
    service = CloudService(config, cloud)
    (item,) = queue_garments(service.audit, service.crop_store, 1, prefix="svc")
    _finish(service.audit, item, days_ago=31, decided=True)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(60)
    try:
        assert wait_until(lambda: not service.audit.has(item), timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(grace=1), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
    assert service.retention.deletion(item)["deleted_by"] == "retention"
