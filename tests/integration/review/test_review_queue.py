"""The queue in the audit store, on SQLite and PostgreSQL: order, claims, leases, guarded decisions."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from cloud.review.decision import CropLabel, DecisionError, HumanDecision, MissedDefect
from cloud.review.queue import ItemConflict, ReviewQueue
from cloud.storage.crop_store import LocalCropStore
from cloud.storage.tables import review_decisions, review_feedback, verified_labels
from harness.review import queue_garments
from seamline.config.taxonomy import default_taxonomy

TAXONOMY = default_taxonomy()


@pytest.fixture
def queued(audit_store, tmp_path):
    # priorities cycle high, medium, low: items 0,3 high; 1,4 medium; 2,5 low (older first within each)
    ids = queue_garments(audit_store, LocalCropStore(tmp_path / "crops"), 6)
    return ReviewQueue(audit_store.engine, TAXONOMY, lease=timedelta(minutes=5)), ids


def labels(decision="reject", *pairs, missed=()):
    crops = [CropLabel(crop_id=c, type=t, severity=s) for c, t, s in pairs]
    return HumanDecision(decision=decision, crops=crops, missed=missed)


def test_items_come_out_high_then_medium_then_low_oldest_first(queued):
    queue, ids = queued
    taken = []
    for n in range(6):
        item, _ = queue.take_next(f"r{n}")
        taken.append(item.item_id)
    assert taken == [ids[0], ids[3], ids[1], ids[4], ids[2], ids[5]]
    assert queue.take_next("r9") == (None, [])
    assert queue.snapshot()["queued_total"] == 0


def test_a_reviewer_holds_one_item_and_gets_it_back(queued):
    queue, _ = queued
    first, _ = queue.take_next("alice")
    again, _ = queue.take_next("alice")
    assert again.item_id == first.item_id and again.claimed_by == "alice"
    other, _ = queue.take_next("bob")
    assert other.item_id != first.item_id


def test_expired_leases_return_items_to_their_place(queued):
    queue, _ = queued
    item, _ = queue.take_next("alice")
    later = datetime.now(UTC) + timedelta(minutes=6)
    taken, expired = queue.take_next("bob", now=later)
    assert [e.item_id for e in expired] == [item.item_id]
    assert taken.item_id == item.item_id  # it kept its priority and age
    with pytest.raises(ItemConflict, match="held by another reviewer"):
        queue.decide(
            "alice", item.item_id, labels("pass", ("c0", "normal", "none"), ("c1", "normal", "none"))
        )


def test_one_reviewer_clicking_take_twice_at_once_holds_one_item(queued):
    queue, _ = queued
    for _ in range(5):
        results: list = []
        threads = [
            threading.Thread(target=lambda out=results: out.append(queue.take_next("alice")[0]))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4 and len({r.item_id for r in results}) == 1, (
            "parallel takes gave one reviewer two items"
        )
        assert [i["claimed_by"] for i in queue.snapshot()["in_review"]] == ["alice"]
        queue.release("alice", results[0].item_id)


def test_release_keeps_the_place_in_line(queued):
    queue, _ = queued
    item, _ = queue.take_next("alice")
    assert queue.release("alice", item.item_id).status == "queued"
    assert queue.take_next("bob")[0].item_id == item.item_id
    with pytest.raises(ItemConflict):
        queue.release("alice", item.item_id)


def test_a_decision_records_feedback_labels_and_the_final_verdict_in_one_go(queued):
    queue, _ = queued
    item, _ = queue.take_next("alice")  # ids[0]: AI c0 stain/moderate/review, c1 hole/severe/reject
    decision = labels(
        "reject",
        ("c0", "tear", "moderate"),
        ("c1", "hole", "severe"),
        missed=[MissedDefect(view_index=0, box=(400, 300, 440, 340), type="stain", severity="minor")],
    )
    result = queue.decide("alice", item.item_id, decision)
    assert result.outcome.value == "false_negative"  # the missed stain outranks the tear/stain mix-up
    assert [region for region, _ in result.regions] == ["c0", "c1", "missed#1"]
    assert [o.value for _, o in result.regions] == ["misclassification", "agreement", "false_negative"]
    with queue.engine.connect() as conn:
        row = (
            conn.execute(sa.select(review_decisions).where(review_decisions.c.item_id == item.item_id))
            .mappings()
            .one()
        )
        feedback = (
            conn.execute(
                sa.select(review_feedback)
                .where(review_feedback.c.item_id == item.item_id)
                .order_by(review_feedback.c.region_id)
            )
            .mappings()
            .all()
        )
        verified = (
            conn.execute(sa.select(verified_labels).where(verified_labels.c.item_id == item.item_id))
            .mappings()
            .all()
        )
    assert (
        row["reviewer_id"] == "alice" and row["ai_call"] == "reject" and row["verdict"]["source"] == "review"
    )
    assert row["published_at"] is None
    assert [(f["region_id"], f["ai_type"], f["human_type"], f["outcome"]) for f in feedback] == [
        ("c0", "stain", "tear", "misclassification"),
        ("c1", "hole", "hole", "agreement"),
        ("missed#1", None, "stain", "false_negative"),
    ]
    assert feedback[1]["severity_agrees"] is True
    assert sorted((v["region_id"], v["type"], v["reviewer_id"]) for v in verified) == [
        ("c0", "tear", "alice"),
        ("c1", "hole", "alice"),
        ("missed#1", "stain", "alice"),
    ]
    assert row["verdict"] == result.verdict.model_dump(mode="json")
    assert queue.unpublished() == [result.verdict]
    queue.mark_published(item.item_id)
    assert queue.unpublished() == []


def test_nobody_decides_an_item_they_do_not_hold(queued):
    queue, ids = queued
    item, _ = queue.take_next("alice")
    fine = labels("pass", ("c0", "normal", "none"), ("c1", "normal", "none"))
    with pytest.raises(ItemConflict, match="held by another"):
        queue.decide("bob", item.item_id, fine)
    with pytest.raises(ItemConflict, match="not held by you"):
        queue.decide("bob", ids[5], fine)
    queue.decide("alice", item.item_id, fine)
    with pytest.raises(ItemConflict, match="already decided"):
        queue.decide("alice", item.item_id, fine)


def test_an_invalid_decision_changes_nothing(queued):
    queue, _ = queued
    item, _ = queue.take_next("alice")
    with pytest.raises(DecisionError):
        queue.decide("alice", item.item_id, labels("pass", ("c0", "normal", "none")))
    assert queue.get(item.item_id).status == "in_review"
    with queue.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(review_feedback)).scalar() == 0
