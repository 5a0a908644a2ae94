"""Deleting garments: on request (``seamline data delete``) and after ``storage.retention_days`` (a sweep in
the cloud service), with an audit trail of what was deleted, by whom and when.

Only a finished garment is deleted: its verdict published (or a garment dropped at the edge) and no person
still to decide it (its review item queued or taken). A deletion is one transaction that records it in
``deletions`` and deletes the garment's row, whose crops, review item, decision, feedback and verified labels
go with it (ON DELETE CASCADE); the crop objects (files or S3) are deleted right after, and the deletion row
says when they all were. A crop store that is down leaves the row pending, and the next sweep finishes it:
nothing of a deleted garment stays behind, and nothing of a kept one is touched.

The sweep also forgets expired review sessions and login-throttle windows that ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from cloud.storage.crop_store import CropStore
from cloud.storage.tables import crops, deletions, garments, login_throttle, review_items, review_sessions
from seamline.clock import utcnow
from seamline.errors import InputError

logger = logging.getLogger(__name__)

FINISHED = ("published", "dropped_at_edge")
WAITING_FOR_A_PERSON = ("queued", "in_review")


class DeletionRefused(InputError):
    """The garment cannot be deleted (unknown, not finished, or waiting for a person)."""


@dataclass(frozen=True)
class Deleted:
    item_id: str
    crops: int  # crop objects removed from the store
    pending: int  # crop objects the store could not remove yet (the sweep retries)


@dataclass(frozen=True)
class SweepResult:
    garments: int
    crops: int
    pending: int
    sessions: int


class Retention:
    """Deletes garments from the audit store and the crop store."""

    def __init__(self, engine: sa.Engine, crop_store: CropStore) -> None:
        self.engine = engine
        self.crop_store = crop_store

    def _why_not(self, conn: sa.Connection, item_id: str) -> str | None:
        row = conn.execute(sa.select(garments.c.status).where(garments.c.item_id == item_id)).first()
        if row is None:
            deleted = conn.execute(
                sa.select(deletions.c.deleted_at, deletions.c.deleted_by).where(
                    deletions.c.item_id == item_id
                )
            ).first()
            if deleted is not None:
                when, who = deleted
                return f"garment {item_id!r} was deleted already ({when:%Y-%m-%d %H:%M} UTC by {who})"
            return f"no garment {item_id!r} in the audit store"
        if row[0] not in FINISHED:
            return (
                f"garment {item_id!r} is still being classified (status {row[0]}): "
                "delete it once its verdict is out"
            )
        waiting = conn.execute(
            sa.select(review_items.c.status).where(
                review_items.c.item_id == item_id, review_items.c.status.in_(WAITING_FOR_A_PERSON)
            )
        ).first()
        if waiting is not None:
            return f"garment {item_id!r} is waiting for a person (review {waiting[0]}): decide it first"
        return None

    def delete(self, item_id: str, deleted_by: str, reason: str) -> Deleted:
        """Delete one finished garment; DeletionRefused says why not."""
        with self.engine.begin() as conn:
            why = self._why_not(conn, item_id)
            if why is not None:
                raise DeletionRefused(why)
            self._delete_rows(conn, item_id, deleted_by, reason, utcnow())
        return self._delete_crops(item_id)

    def _delete_rows(self, conn: sa.Connection, item_id: str, by: str, reason: str, now: datetime) -> None:
        row = conn.execute(
            sa.select(garments.c.site_id, garments.c.line_id, garments.c.captured_at).where(
                garments.c.item_id == item_id
            )
        ).one()
        uris = [r[0] for r in conn.execute(sa.select(crops.c.uri).where(crops.c.item_id == item_id))]
        conn.execute(
            deletions.insert().values(
                item_id=item_id,
                site_id=row.site_id,
                line_id=row.line_id,
                captured_at=row.captured_at,
                deleted_at=now,
                deleted_by=by[:128],
                reason=reason,
                crop_uris=uris,
                crops_deleted_at=None if uris else now,
            )
        )
        conn.execute(garments.delete().where(garments.c.item_id == item_id))

    def _delete_crops(self, item_id: str) -> Deleted:
        with self.engine.connect() as conn:
            uris = conn.execute(
                sa.select(deletions.c.crop_uris).where(
                    deletions.c.item_id == item_id, deletions.c.crops_deleted_at.is_(None)
                )
            ).scalar()
        if not uris:
            return Deleted(item_id, 0, 0)
        removed = 0
        for uri in uris:
            try:
                self.crop_store.delete(uri)
                removed += 1
            except Exception as exc:  # the store is down: the sweep tries again
                logger.warning("could not delete crop %s of a deleted garment (retried later): %s", uri, exc)
        if removed == len(uris):
            with self.engine.begin() as conn:
                conn.execute(
                    deletions.update().where(deletions.c.item_id == item_id).values(crops_deleted_at=utcnow())
                )
        return Deleted(item_id, removed, len(uris) - removed)

    def expired(self, older_than: datetime, limit: int = 500) -> list[str]:
        """Finished garments received before ``older_than`` that no person is waiting on, oldest first."""
        waiting = sa.select(review_items.c.item_id).where(review_items.c.status.in_(WAITING_FOR_A_PERSON))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(garments.c.item_id)
                .where(
                    garments.c.status.in_(FINISHED),
                    garments.c.received_at < older_than,
                    garments.c.item_id.not_in(waiting),
                )
                .order_by(garments.c.received_at)
                .limit(limit)
            ).all()
        return [r[0] for r in rows]

    def sweep(self, retention: timedelta | None, *, limit: int = 500) -> SweepResult:
        """One pass: delete up to ``limit`` garments past ``retention`` (None: keep garments for ever), finish
        crop deletions left pending, forget expired sessions and ended throttle windows."""
        now = utcnow()
        deleted: list[Deleted] = []
        for item_id in self.expired(now - retention, limit) if retention is not None else []:
            try:
                with self.engine.begin() as conn:
                    if self._why_not(conn, item_id) is not None:
                        continue  # taken back into review meanwhile, or deleted by another replica
                    self._delete_rows(
                        conn, item_id, "retention", f"older than storage.retention_days ({retention})", now
                    )
            except sa.exc.IntegrityError:
                continue  # another replica recorded its deletion first
            deleted.append(self._delete_crops(item_id))
        with self.engine.connect() as conn:
            pending = [
                r[0]
                for r in conn.execute(
                    sa.select(deletions.c.item_id).where(deletions.c.crops_deleted_at.is_(None)).limit(limit)
                )
            ]
        retried = [self._delete_crops(item_id) for item_id in pending]
        with self.engine.begin() as conn:
            sessions = conn.execute(
                review_sessions.delete().where(review_sessions.c.expires_at < now)
            ).rowcount
            conn.execute(
                login_throttle.delete().where(login_throttle.c.window_start < now - timedelta(days=1))
            )
        done = deleted + retried
        result = SweepResult(
            len(deleted), sum(d.crops for d in done), sum(d.pending for d in retried), sessions
        )
        if result.garments or result.crops or result.sessions:
            logger.info(
                "retention: deleted %d garment(s), %d crop object(s), %d expired session(s); "
                "%d crop(s) pending",
                result.garments,
                result.crops,
                result.sessions,
                result.pending,
            )
        return result

    def deletion(self, item_id: str) -> dict | None:
        """The audit trail's record of a deleted garment."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(deletions).where(deletions.c.item_id == item_id)).first()
        return row._asdict() if row else None
