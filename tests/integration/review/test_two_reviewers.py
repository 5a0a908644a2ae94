"""Two reviewers working the same queue at once over HTTP: no item is taken twice and none is lost."""

import threading

import pytest
import sqlalchemy as sa

from cloud.storage.tables import review_decisions, review_feedback
from harness.review import queue_garments
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ITEMS = 100


@pytest.fixture(params=["sqlite", "postgresql"])
def console_audit_url(request):
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_two_reviewers_100_items_none_taken_twice_none_lost(console, login, recorder):
    ids = queue_garments(console.service.audit, console.service.crop_store, ITEMS, crops_per_garment=1)
    reviewers = [login("alice"), login("bob")]
    taken: dict[str, list[str]] = {r.reviewer_id: [] for r in reviewers}
    failures: list[str] = []

    def work(reviewer) -> None:  # type: ignore[no-untyped-def]
        while True:
            answer = reviewer.post("/api/take")
            if answer.status_code == 204:
                return
            if answer.status_code != 200:
                failures.append(f"take: {answer.status_code} {answer.text}")
                return
            item = answer.json()
            taken[reviewer.reviewer_id].append(item["item_id"])
            crop = item["crops"][0]["crop_id"]
            decision = {
                "decision": "reject" if len(taken[reviewer.reviewer_id]) % 2 else "pass",
                "crops": [{"crop_id": crop, "type": "stain", "severity": "minor"}],
            }
            done = reviewer.post(f"/api/items/{item['item_id']}/decision", json=decision)
            if done.status_code != 200:
                failures.append(f"decide {item['item_id']}: {done.status_code} {done.text}")
                return

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not failures, failures[:3]
    both = taken["alice"] + taken["bob"]
    assert not set(taken["alice"]) & set(taken["bob"]), "an item was taken by both reviewers"
    assert sorted(both) == sorted(ids) and len(both) == ITEMS  # each exactly once
    assert taken["alice"] and taken["bob"], "both reviewers should have had work"
    with console.service.audit.engine.connect() as conn:
        decided = dict(
            conn.execute(sa.select(review_decisions.c.item_id, review_decisions.c.reviewer_id)).all()
        )
        feedback = conn.execute(sa.select(sa.func.count()).select_from(review_feedback)).scalar()
    assert decided == {i: who for who, items in taken.items() for i in items}
    assert feedback == ITEMS
    assert console.service.queue.snapshot()["queued_total"] == 0
    # every garment's final verdict reached the broker (QoS 1: at least once; consumers dedupe by verdict_id,
    # and each garment has exactly one final verdict id) and was marked published
    assert wait_until(lambda: {v["item_id"] for v in recorder.verdicts} == set(ids), 30)
    by_item: dict[str, set[str]] = {}
    for v in recorder.verdicts:
        by_item.setdefault(v["item_id"], set()).add(v["verdict_id"])
    assert all(len(verdict_ids) == 1 for verdict_ids in by_item.values())
    assert wait_until(lambda: console.service.queue.unpublished() == [], 15)
