"""The audit store: every accepted garment, its crops, and later its verdict and publication; and every
garment the edge dropped without inspecting it (status ``dropped_at_edge``), so the trail counts every garment
sent or dropped.

The tables are in tables.py, made and upgraded by Alembic (schema.py) when a store opens.

SQLAlchemy Core over SQLite (default, WAL, synchronous FULL) or PostgreSQL (a ``postgresql+psycopg://`` URL):
the same calls scale out by changing the URL. Writes are synchronous; async callers run them in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from cloud.records import CropRecord, DroppedGarmentRecord, GarmentRecord
from cloud.storage.schema import require_head, upgrade
from cloud.storage.tables import crops, garments, review_items
from seamline.clock import utcnow
from seamline.contract.messages import Verdict
from seamline.errors import MissingDependencyError

logger = logging.getLogger(__name__)

_PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}

# The status of a garment the edge dropped: final from the start, nothing to classify or publish.
DROPPED_AT_EDGE = "dropped_at_edge"


def create_audit_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL and synchronous FULL so a commit is on disk before the ack."""
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            exc.name or "database driver", "cloud", f"The audit store at {url.split(':')[0]}"
        ) from exc
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


class AuditStore:
    """Garments and crops as accepted, and what became of them."""

    def __init__(self, engine: sa.Engine, *, migrate: bool = True) -> None:
        """``migrate``: bring the schema to head; otherwise refuse a schema that is not at head."""
        self.engine = engine
        if migrate:
            upgrade(engine)
        else:
            require_head(engine)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> AuditStore:
        return cls(create_audit_engine(url), migrate=migrate)

    def has(self, item_id: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(sa.select(garments.c.item_id).where(garments.c.item_id == item_id)).first()
                is not None
            )

    def accept(
        self,
        record: GarmentRecord,
        crop_uris: dict[str, str],
        *,
        owner: str | None = None,
        lease_s: float = 0.0,
    ) -> bool:
        """Record an accepted garment and its crops in one transaction; False if the item id was already
        there. ``owner`` takes the garment's lease for ``lease_s`` (the replica that accepted it classifies
        it)."""
        row = {
            "item_id": record.item_id,
            "site_id": record.site_id,
            "line_id": record.line_id,
            "station_id": record.station_id,
            "agent_id": record.agent_id,
            "captured_at": record.captured_at,
            "deadline_at": record.deadline_at,
            "received_at": record.received_at,
            "detector_version": record.detector_version,
            "views": [list(v) for v in record.views],
            "operator_note": record.operator_note,
            "sensor_readings": dict(record.sensor_readings),
            "status": "accepted",
            "purpose": record.purpose,
            "owner": owner,
            "lease_until": utcnow() + timedelta(seconds=lease_s) if owner else None,
        }
        crop_rows = [
            {
                "item_id": record.item_id,
                "crop_id": c.crop_id,
                "view_index": c.view_index,
                "box": list(c.box),
                "crop_box": list(c.crop_box),
                "detector_score": c.detector_score,
                "detector_label": c.detector_label,
                "encoding": c.encoding,
                "width": c.width,
                "height": c.height,
                "size_bytes": len(c.image),
                "uri": crop_uris[c.crop_id],
                "operator_note": c.operator_note,
            }
            for c in record.crops
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(garments.insert().values(row))
                conn.execute(crops.insert(), crop_rows)
        except IntegrityError:
            if self.has(record.item_id):
                return False
            raise
        return True

    def record_drop(self, record: DroppedGarmentRecord) -> bool:
        """Record a garment the edge dropped (one row, status dropped_at_edge, no crops); False if the item id
        was already there, whether as a drop or as a garment the edge did send."""
        row = {
            "item_id": record.item_id,
            "site_id": record.site_id,
            "line_id": record.line_id,
            "station_id": record.station_id,
            "agent_id": record.agent_id,
            "captured_at": record.captured_at,
            "deadline_at": record.deadline_at,
            "received_at": record.received_at,
            "detector_version": "",  # no detector ran on it
            "views": [],
            "sensor_readings": {},
            "status": DROPPED_AT_EDGE,
            "drop_reason": record.reason,
            "drop_detail": record.detail,
            "drop_line_action": record.line_action,
            "dropped_at": record.dropped_at,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(garments.insert().values(row))
        except IntegrityError:
            if self.has(record.item_id):
                return False
            raise
        return True

    def pending(self, limit: int = 1000) -> list[str]:
        """Item ids accepted but not yet published, oldest first (work to resume after a restart). Garments
        dropped at the edge are never pending: there is nothing to classify or publish."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(garments.c.item_id)
                .where(garments.c.status.not_in(("published", DROPPED_AT_EDGE)))
                .order_by(garments.c.received_at)
                .limit(limit)
            ).all()
        return [r[0] for r in rows]

    # leases: every unfinished garment is seen through by exactly one live replica --------------------------

    def claim(self, owner: str, *, lease_s: float, limit: int = 100) -> list[str]:
        """Take the lease of unfinished garments nobody holds, live deadlines first, then oldest first.

        Unfinished is accepted or classified but not published; nobody holds it when it never had a lease or
        its lease ran out (its replica died or lost its database). Each row is taken with a compare-and-set
        update, so two replicas sweeping at once never both take the same garment.
        """
        now = utcnow()
        unfinished = garments.c.status.in_(("accepted", "classified"))
        free = sa.or_(garments.c.lease_until.is_(None), garments.c.lease_until < now)
        live_first = sa.case(
            (sa.and_(garments.c.deadline_at.is_not(None), garments.c.deadline_at > now), 0), else_=1
        )
        claimed = []
        with self.engine.begin() as conn:
            candidates = conn.execute(
                sa.select(garments.c.item_id)
                .where(unfinished, free)
                .order_by(live_first, garments.c.deadline_at, garments.c.received_at)
                .limit(limit)
            ).all()
            for (item_id,) in candidates:
                taken = conn.execute(
                    garments.update()
                    .where(garments.c.item_id == item_id, unfinished, free)
                    .values(owner=owner, lease_until=now + timedelta(seconds=lease_s))
                )
                if taken.rowcount == 1:
                    claimed.append(item_id)
        return claimed

    def renew(self, owner: str, item_ids: Iterable[str], *, lease_s: float) -> set[str]:
        """Extend the leases ``owner`` holds on ``item_ids``; returns those it no longer holds (its lease ran
        out and another replica took the garment over, or the garment is published)."""
        ids = list(item_ids)
        until = utcnow() + timedelta(seconds=lease_s)
        held: set[str] = set()
        with self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                conn.execute(
                    garments.update()
                    .where(
                        garments.c.owner == owner,
                        garments.c.item_id.in_(batch),
                        garments.c.status.in_(("accepted", "classified")),
                    )
                    .values(lease_until=until)
                )
                held.update(
                    conn.execute(
                        sa.select(garments.c.item_id).where(
                            garments.c.owner == owner,
                            garments.c.item_id.in_(batch),
                            garments.c.status.in_(("accepted", "classified")),
                        )
                    ).scalars()
                )
        return set(ids) - held

    def release(self, owner: str) -> int:
        """Give up every lease held under ``owner`` (a replica starting again under its own name: whatever its
        previous run held is free to claim at once). Returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                garments.update()
                .where(garments.c.owner == owner, garments.c.status != "published")
                .values(lease_until=None)
            )
        return result.rowcount

    def garment(self, item_id: str) -> dict[str, Any] | None:
        """The garment row with its crop rows under ``"crops"``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(garments).where(garments.c.item_id == item_id)).mappings().first()
            if row is None:
                return None
            crop_rows = (
                conn.execute(sa.select(crops).where(crops.c.item_id == item_id).order_by(crops.c.crop_id))
                .mappings()
                .all()
            )
        return {**dict(row), "crops": [dict(c) for c in crop_rows]}

    def record_verdict(
        self,
        verdict: Verdict,
        *,
        review_priority: str | None = None,
        review_kind: str = "routed",
        publish: bool = True,
    ) -> Verdict:
        """Store the verdict (and queue the garment for review if routed to people) before it is published,
        in one transaction, so a restart republishes the same verdict and the queue never misses an item.

        Written once per garment: the first verdict stored wins, and a second classification of the same
        garment (two replicas after a lease ran out, a retry after a lost reply) gets the stored verdict back
        to publish instead of its own, and queues nothing. Returns the verdict to publish.

        ``review_kind``: "routed" (people decide the garment), "audit" (settled automatically, sampled for a
        blind check; see cloud/routing/audit.py) or "passed_audit" (passed at the edge, its views sampled).
        ``publish=False``: the verdict is only the record of a decision made elsewhere (the edge's pass of an
        audit sample): stored as done, never published, so no restart or sweep sends it out.
        """
        now = utcnow()
        done = {} if publish else {"status": "published", "published_at": now}
        with self.engine.begin() as conn:
            written = conn.execute(
                garments.update()
                .where(
                    garments.c.item_id == verdict.item_id,
                    garments.c.status == "accepted",
                    garments.c.verdict_id.is_(None),
                )
                .values(
                    {
                        "status": "classified",
                        "verdict_id": verdict.verdict_id,
                        "verdict": verdict.model_dump(mode="json"),
                        "classified_at": now,
                        **done,
                    }
                )
            )
            if written.rowcount != 1:
                stored = conn.execute(
                    sa.select(garments.c.verdict).where(garments.c.item_id == verdict.item_id)
                ).scalar()
                if stored is None:
                    raise LookupError(f"garment {verdict.item_id} is not in the audit store as classifiable")
                return Verdict.model_validate(stored)
            if review_priority is not None:
                conn.execute(
                    review_items.insert().values(
                        item_id=verdict.item_id,
                        site_id=verdict.site_id,
                        line_id=verdict.line_id,
                        priority=review_priority,
                        priority_rank=_PRIORITY_RANK[review_priority],
                        status="queued",
                        verdict_id=verdict.verdict_id,
                        queued_at=utcnow(),
                        kind=review_kind,
                    )
                )
        return verdict

    def review_queue(self, limit: int = 100) -> list[dict[str, Any]]:
        """Queued review items in the order reviewers should take them."""
        with self.engine.connect() as conn:
            rows = conn.execute(queued_in_order().limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def mark_published(self, item_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                garments.update()
                .where(garments.c.item_id == item_id)
                .values(status="published", published_at=utcnow(), owner=None, lease_until=None)
            )

    def oldest_unfinished(self) -> datetime | None:
        """When the oldest garment still without a published verdict was received (any replica's)."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(garments.c.received_at)).where(
                    garments.c.status.in_(("accepted", "classified"))
                )
            ).scalar()

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(garments.c.status, sa.func.count()).group_by(garments.c.status)
            ).all()
        return {status: n for status, n in rows}


def garment_record(row: Mapping[str, Any], read_crop: Callable[[str], bytes]) -> GarmentRecord:
    """The accepted garment a ``garment()`` row describes (the inverse of ``accept``).

    Args:
        row: a garment row with its crop rows under ``"crops"``.
        read_crop: reads a crop's image back from its URI (the crop store's ``get``).

    Returns:
        The record as ingress accepted it, less its edge timings (the audit store does not keep them).
    """
    crop_records = tuple(
        CropRecord(
            crop_id=c["crop_id"],
            view_index=c["view_index"],
            box=tuple(c["box"]),
            crop_box=tuple(c["crop_box"]),
            detector_score=c["detector_score"],
            detector_label=c["detector_label"],
            encoding=c["encoding"],
            image=read_crop(c["uri"]),
            width=c["width"],
            height=c["height"],
            operator_note=c["operator_note"],
            uri=c["uri"],
        )
        for c in row["crops"]
    )
    return GarmentRecord(
        item_id=row["item_id"],
        site_id=row["site_id"],
        line_id=row["line_id"],
        station_id=row["station_id"],
        agent_id=row["agent_id"],
        captured_at=row["captured_at"],
        deadline_at=row["deadline_at"],
        received_at=row["received_at"],
        detector_version=row["detector_version"],
        views=tuple(tuple(v) for v in row["views"]),
        crops=crop_records,
        operator_note=row["operator_note"],
        sensor_readings=tuple(sorted((row["sensor_readings"] or {}).items())),
        purpose=row.get("purpose") or "inspect",
    )


def recorded_verdict(row: Mapping[str, Any]) -> Verdict | None:
    """The verdict recorded for a ``garment()`` row and not yet acknowledged, or None if it has none."""
    if row["status"] != "classified" or not row["verdict"]:
        return None
    return Verdict.model_validate(row["verdict"])


def queued_in_order() -> sa.Select:
    """Queued review items, highest priority first, oldest first within a priority (the order people take
    them)."""
    return (
        sa.select(review_items)
        .where(review_items.c.status == "queued")
        .order_by(review_items.c.priority_rank, review_items.c.queued_at, review_items.c.item_id)
    )
