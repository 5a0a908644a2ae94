"""The review queue in the audit store: take the next item, give it back, decide it.

Order: high, then medium, then low priority; oldest first within a priority. A reviewer holds at most one
item at a time, under a lease; an item whose lease ran out goes back to the queue the next time anyone takes
work. Every claim and every decision is one guarded UPDATE (``... WHERE status = 'queued'`` or ``... AND
claimed_by = me``), so two reviewers never get the same item and nobody decides an item they do not hold, on
SQLite and on PostgreSQL alike. A decision, its typed feedback, the verified labels and the final verdict are
written in one transaction; the verdict is published afterwards and marked when the broker acknowledges it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloud.review.decision import MISSED_PREFIX, HumanDecision, check_decision, final_verdict
from cloud.review.feedback import Outcome, ai_call, garment_outcome, region_outcome
from cloud.storage.audit import queued_in_order
from cloud.storage.tables import (
    crops,
    garments,
    review_decisions,
    review_feedback,
    review_items,
    verified_labels,
)
from seamline.clock import utcnow
from seamline.config.taxonomy import Taxonomy
from seamline.contract.messages import Verdict

logger = logging.getLogger(__name__)
PRIORITIES = ("high", "medium", "low")


class ReviewError(Exception):
    """A queue operation that cannot be done; ``status`` is the HTTP status the console answers with."""

    status = 400


class ItemNotFound(ReviewError):
    status = 404


class ItemConflict(ReviewError):
    """The item is held by someone else, already decided, or not held by the caller."""

    status = 409


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    site_id: str
    line_id: str
    priority: str
    status: str  # queued | in_review | decided
    verdict_id: str
    queued_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    decided_at: datetime | None
    # "routed"; "audit": settled automatically, sampled for a blind check (cloud/routing/audit.py);
    # "passed_audit": passed at the edge (nothing detected), its views sampled
    kind: str = "routed"

    @property
    def blind(self) -> bool:
        """Reviewed without seeing the AI's answer (an audit sample not yet decided): no anchoring."""
        return self.kind in ("audit", "passed_audit") and self.status != "decided"

    @classmethod
    def from_row(cls, row: Any) -> ReviewItem:
        return cls(**{k: v for k, v in dict(row).items() if k != "priority_rank"})


@dataclass(frozen=True)
class DecisionResult:
    item: ReviewItem
    verdict: Verdict
    outcome: Outcome
    regions: tuple[tuple[str, Outcome], ...]  # (region id, outcome)


class ReviewQueue:
    """Queue operations over an audit-store engine (the store's migrations must have run)."""

    def __init__(
        self, engine: sa.Engine, taxonomy: Taxonomy, *, lease: timedelta = timedelta(minutes=15)
    ) -> None:
        self.engine = engine
        self.taxonomy = taxonomy
        self.lease = lease

    # reading -------------------------------------------------------------------------------------------

    def get(self, item_id: str) -> ReviewItem:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(review_items).where(review_items.c.item_id == item_id))
                .mappings()
                .first()
            )
        if row is None:
            raise ItemNotFound(f"no review item {item_id!r}")
        return ReviewItem.from_row(row)

    def snapshot(self, limit: int = 50) -> dict[str, Any]:
        """Counts per priority and state, and the next ``limit`` queued items in the order they go out."""
        with self.engine.connect() as conn:
            counts = conn.execute(
                sa.select(review_items.c.status, review_items.c.priority, sa.func.count())
                .where(review_items.c.status != "decided")
                .group_by(review_items.c.status, review_items.c.priority)
            ).all()
            rows = conn.execute(queued_in_order().limit(limit)).mappings().all()
            in_review = (
                conn.execute(
                    sa.select(review_items.c.item_id, review_items.c.claimed_by, review_items.c.priority)
                    .where(review_items.c.status == "in_review")
                    .order_by(review_items.c.claimed_at)
                )
                .mappings()
                .all()
            )
        queued = {p: 0 for p in PRIORITIES}
        for status, priority, n in counts:
            if status == "queued":
                queued[priority] = n
        return {
            "queued": queued,
            "queued_total": sum(queued.values()),
            "in_review": [dict(r) for r in in_review],
            "next": [
                {
                    "item_id": r["item_id"],
                    "priority": r["priority"],
                    "line_id": r["line_id"],
                    "queued_at": r["queued_at"].isoformat(),
                }
                for r in rows
            ],
        }

    def detail(self, item_id: str) -> dict[str, Any]:
        """What the console shows for an item: review row, garment, crops, AI verdict, decision if any."""
        with self.engine.connect() as conn:
            review = (
                conn.execute(sa.select(review_items).where(review_items.c.item_id == item_id))
                .mappings()
                .first()
            )
            if review is None:
                raise ItemNotFound(f"no review item {item_id!r}")
            garment = conn.execute(sa.select(garments).where(garments.c.item_id == item_id)).mappings().one()
            crop_rows = (
                conn.execute(
                    sa.select(crops)
                    .where(crops.c.item_id == item_id)
                    .order_by(crops.c.view_index, crops.c.crop_id)
                )
                .mappings()
                .all()
            )
            decided = (
                conn.execute(sa.select(review_decisions).where(review_decisions.c.item_id == item_id))
                .mappings()
                .first()
            )
        return {
            "review": ReviewItem.from_row(review),
            "garment": {**dict(garment), "crops": [dict(c) for c in crop_rows]},
            "ai_verdict": garment["verdict"] or {},
            "decision": dict(decided) if decided else None,
        }

    # claiming ------------------------------------------------------------------------------------------

    def take_next(
        self, reviewer_id: str, *, now: datetime | None = None
    ) -> tuple[ReviewItem | None, list[ReviewItem]]:
        """Claim the next item for ``reviewer_id`` (or renew the one they already hold).

        Returns the item (None when the queue is empty) and the items whose lease expired on the way.
        """
        now = now or utcnow()
        expired = self.expire_leases(now=now)
        lease_until = now + self.lease
        with self.engine.begin() as conn:
            renewed = conn.execute(
                review_items.update()
                .where(review_items.c.claimed_by == reviewer_id, review_items.c.status == "in_review")
                .values(lease_expires_at=lease_until)
            )
            if renewed.rowcount:
                return self._held_by(conn, reviewer_id), expired
        for _ in range(20):  # each round loses only to a reviewer who claimed that same row first
            try:
                with self.engine.begin() as conn:
                    next_id = (
                        queued_in_order().with_only_columns(review_items.c.item_id).limit(1).scalar_subquery()
                    )
                    claimed = conn.execute(
                        review_items.update()
                        .where(review_items.c.item_id == next_id, review_items.c.status == "queued")
                        .values(
                            status="in_review",
                            claimed_by=reviewer_id,
                            claimed_at=now,
                            lease_expires_at=lease_until,
                        )
                    )
                    if claimed.rowcount:
                        return self._held_by(conn, reviewer_id), expired
                    if (
                        conn.execute(
                            sa.select(sa.func.count()).where(review_items.c.status == "queued")
                        ).scalar()
                        == 0
                    ):
                        return None, expired
            except IntegrityError:
                # the same reviewer's parallel request claimed an item first (one item per reviewer): that one
                with self.engine.connect() as conn:
                    return self._held_by(conn, reviewer_id), expired
        raise ItemConflict("the queue is too busy to claim an item; try again")

    def release(self, reviewer_id: str, item_id: str) -> ReviewItem:
        """Give a held item back to the queue (it keeps its place: priority and queued_at are unchanged)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                review_items.update()
                .where(
                    review_items.c.item_id == item_id,
                    review_items.c.claimed_by == reviewer_id,
                    review_items.c.status == "in_review",
                )
                .values(status="queued", claimed_by=None, claimed_at=None, lease_expires_at=None)
            )
        if not done.rowcount:
            self._refuse(item_id, reviewer_id)
        return self.get(item_id)

    def expire_leases(self, *, now: datetime | None = None) -> list[ReviewItem]:
        """Return items whose lease ran out to the queue; returns them."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            stale = conn.execute(
                sa.select(review_items.c.item_id, review_items.c.claimed_by).where(
                    review_items.c.status == "in_review", review_items.c.lease_expires_at < now
                )
            ).all()
            returned = []
            for item_id, holder in stale:
                done = conn.execute(  # re-checked: the holder may have renewed the lease since the SELECT
                    review_items.update()
                    .where(
                        review_items.c.item_id == item_id,
                        review_items.c.claimed_by == holder,
                        review_items.c.status == "in_review",
                        review_items.c.lease_expires_at < now,
                    )
                    .values(status="queued", claimed_by=None, claimed_at=None, lease_expires_at=None)
                )
                if done.rowcount:
                    returned.append(item_id)
                    logger.info(
                        "review lease of %s expired; back in the queue", holder, extra={"item_id": item_id}
                    )
        return [self.get(item_id) for item_id in returned]

    # deciding ------------------------------------------------------------------------------------------

    def decide(
        self, reviewer_id: str, item_id: str, decision: HumanDecision, *, now: datetime | None = None
    ) -> DecisionResult:
        """Record ``reviewer_id``'s decision on an item they hold: decision, feedback, verified labels and the
        final verdict, in one transaction. Raises DecisionError for a decision that does not fit the garment,
        ItemConflict if the reviewer does not hold the item."""
        now = now or utcnow()
        detail = self.detail(item_id)
        garment, ai = detail["garment"], detail["ai_verdict"]
        check_decision(decision, garment, self.taxonomy)
        verdict = final_verdict(
            decision,
            garment,
            ai,
            reviewer_id=reviewer_id,
            priority=detail["review"].priority,
            decided_at=now,
            normal_id=self.taxonomy.normal.id,
        )
        feedback_rows, label_rows, outcomes = self._feedback(decision, garment, ai, reviewer_id, now)
        call = ai_call(d["decision"] for d in ai.get("defects", []))
        outcome = garment_outcome(call, decision.decision, [o for _, o in outcomes])
        with self.engine.begin() as conn:
            held = conn.execute(
                review_items.update()
                .where(
                    review_items.c.item_id == item_id,
                    review_items.c.claimed_by == reviewer_id,
                    review_items.c.status == "in_review",
                )
                .values(status="decided", decided_at=now, lease_expires_at=None)
            )
            if held.rowcount:
                conn.execute(
                    review_decisions.insert().values(
                        item_id=item_id,
                        reviewer_id=reviewer_id,
                        decision=decision.decision,
                        note=decision.note,
                        decided_at=now,
                        ai_verdict_id=detail["review"].verdict_id,
                        ai_call=call,
                        outcome=outcome.value,
                        verdict_id=verdict.verdict_id,
                        verdict=verdict.model_dump(mode="json"),
                        published_at=None,
                    )
                )
                conn.execute(review_feedback.insert(), feedback_rows)
                conn.execute(verified_labels.insert(), label_rows)
        if not held.rowcount:
            self._refuse(item_id, reviewer_id)
        logger.info(
            "reviewed by %s: %s (%s)",
            reviewer_id,
            decision.decision,
            outcome.value,
            extra={"item_id": item_id},
        )
        return DecisionResult(self.get(item_id), verdict, outcome, tuple(outcomes))

    def _feedback(self, decision: HumanDecision, garment: dict, ai: dict, reviewer_id: str, now: datetime):  # type: ignore[no-untyped-def]
        ai_by_crop = {d["crop_id"]: d for d in ai.get("defects", [])}
        by_crop = {c["crop_id"]: c for c in garment["crops"]}
        feedback_rows, label_rows, outcomes = [], [], []
        regions = [
            (
                label.crop_id,
                label.crop_id,
                by_crop[label.crop_id]["view_index"],
                list(by_crop[label.crop_id]["box"]),
                label.type,
                label.severity,
            )
            for label in decision.crops
        ]
        regions += [
            (f"{MISSED_PREFIX}{i}", None, m.view_index, list(m.box), m.type, m.severity)
            for i, m in enumerate(decision.missed, 1)
        ]
        for region_id, crop_id, view_index, box, human_type, human_severity in regions:
            ai_region = ai_by_crop.get(crop_id) if crop_id else None
            ai_type = ai_region["type"] if ai_region else (None if crop_id is None else "unknown")
            result = region_outcome(
                ai_type, ai_region["severity"] if ai_region else None, human_type, human_severity
            )
            outcomes.append((region_id, result.outcome))
            common = {
                "item_id": garment["item_id"],
                "region_id": region_id,
                "crop_id": crop_id,
                "view_index": view_index,
                "box": box,
                "reviewer_id": reviewer_id,
            }
            feedback_rows.append(
                {
                    **common,
                    "ai_type": ai_type,
                    "ai_severity": ai_region["severity"] if ai_region else None,
                    "ai_decision": ai_region["decision"] if ai_region else None,
                    "ai_score": (ai_region.get("scores") or {}).get("classifier") if ai_region else None,
                    "human_type": human_type,
                    "human_severity": human_severity,
                    "outcome": result.outcome.value,
                    "severity_agrees": result.severity_agrees,
                    "decided_at": now,
                }
            )
            label_rows.append(
                {
                    **common,
                    "type": human_type,
                    "severity": human_severity,
                    "source": "review",
                    "verified_at": now,
                }
            )
        return feedback_rows, label_rows, outcomes

    def _held_by(self, conn: sa.Connection, reviewer_id: str) -> ReviewItem:
        row = (
            conn.execute(
                sa.select(review_items).where(
                    review_items.c.claimed_by == reviewer_id, review_items.c.status == "in_review"
                )
            )
            .mappings()
            .one()
        )
        return ReviewItem.from_row(row)

    def _refuse(self, item_id: str, reviewer_id: str) -> None:
        item = self.get(item_id)
        if item.status == "decided":
            raise ItemConflict(f"item {item_id!r} is already decided")
        if item.status == "in_review" and item.claimed_by != reviewer_id:
            raise ItemConflict(f"item {item_id!r} is held by another reviewer")
        raise ItemConflict(f"item {item_id!r} is not held by you (take it from the queue first)")

    # publication ---------------------------------------------------------------------------------------

    def unpublished(self, *, older_than: timedelta = timedelta(0), limit: int = 10_000) -> list[Verdict]:
        """Final verdicts decided more than ``older_than`` ago and not yet acknowledged by the broker."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(review_decisions.c.verdict)
                .where(
                    review_decisions.c.published_at.is_(None),
                    review_decisions.c.decided_at <= utcnow() - older_than,
                )
                .order_by(review_decisions.c.decided_at)
                .limit(limit)
            ).all()
        return [Verdict.model_validate(r[0]) for r in rows]

    def mark_published(self, item_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                review_decisions.update()
                .where(review_decisions.c.item_id == item_id)
                .values(published_at=utcnow())
            )
