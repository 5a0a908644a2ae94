"""A durable, bounded store-and-forward spool (SQLite in WAL mode) that hands out garments live ones first.

A garment is written here before it is sent and deleted only when the cloud acks it, so a WAN outage or a
crash (even SIGKILL) loses nothing: on restart the spool still holds every unacknowledged garment, and the
uplink drains it. The order it drains in is ``Spool.in_send_order``: garments whose verdict can still arrive
before their deadline first, then the backlog that already got its fail-safe command, oldest first.

Each entry is one record for the cloud, keyed by the garment's item id: a garment (a serialized ``Garment``)
or the small record of a garment the edge dropped before inspecting it (a serialized ``GarmentDropped``, which
has no deadline to meet and so drains with the backlog). Both kinds share the limits and the ack rule.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

logger = logging.getLogger(__name__)


class FullPolicy(str, Enum):
    """What to do when the spool is at its limit."""

    # Refuse the new garment: the caller diverts it to review at once (fail-safe, nothing silently dropped).
    REJECT_NEW = "reject_new"
    # Evict the oldest garment to make room: its deadline has long passed and its line command is already
    # out (fail-safe divert), so only its cloud record is lost -- counted in the metrics.
    DROP_OLDEST = "drop_oldest"


class RecordKind(str, Enum):
    """What a spooled payload is."""

    GARMENT = "garment"  # a serialized Garment: crops for the cloud to classify
    DROPPED = "dropped"  # a serialized GarmentDropped: a garment the edge dropped before inspecting it


@dataclass(frozen=True)
class SpooledGarment:
    """One spooled record: its capture order, id, serialized message, deadline and kind of message."""

    seq: int
    item_id: str
    payload: bytes
    enqueued_at: float
    attempts: int
    deadline_at: float | None  # epoch seconds; None if spooled without one (or by a version that kept none)
    kind: RecordKind = RecordKind.GARMENT


@dataclass(frozen=True)
class PutResult:
    """Outcome of ``Spool.put``."""

    accepted: bool
    duplicate: bool = False
    evicted: tuple[str, ...] = ()


class SpoolFull(Exception):
    """The spool is at its limit and the policy is reject_new."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS garments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    deadline_at REAL,
    kind TEXT NOT NULL DEFAULT 'garment',
    set_aside_at REAL,
    set_aside_reason TEXT
);
"""
_COLUMNS = "seq, item_id, payload, enqueued_at, attempts, deadline_at, kind"


class Spool:
    """The edge's store-and-forward queue.

    Args:
        path: SQLite file (created with its folder).
        max_items: most garments held; 0 for no limit.
        max_bytes: most payload bytes held; 0 for no limit.
        full_policy: what ``put`` does at the limit.
        synchronous: SQLite ``synchronous`` level; FULL survives power loss, NORMAL only process crashes.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_items: int = 100_000,
        max_bytes: int = 2 * 1024**3,
        full_policy: FullPolicy = FullPolicy.REJECT_NEW,
        synchronous: str = "FULL",
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.full_policy = FullPolicy(full_policy)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(garments)")}
        if "deadline_at" not in columns:
            # A spool written before deadlines were kept: its garments count as backlog (oldest first).
            self._db.execute("ALTER TABLE garments ADD COLUMN deadline_at REAL")
        if "kind" not in columns:  # a spool written before drop records: everything in it is a garment
            self._db.execute("ALTER TABLE garments ADD COLUMN kind TEXT NOT NULL DEFAULT 'garment'")
        if "set_aside_at" not in columns:  # a spool written before poison records were set aside
            self._db.execute("ALTER TABLE garments ADD COLUMN set_aside_at REAL")
            self._db.execute("ALTER TABLE garments ADD COLUMN set_aside_reason TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS garments_deadline ON garments (deadline_at)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _totals(self) -> tuple[int, int]:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM garments").fetchone()
        return int(count), int(size)

    def _over(self, count: int, size: int, extra: int) -> bool:
        return (self.max_items > 0 and count + 1 > self.max_items) or (
            self.max_bytes > 0 and size + extra > self.max_bytes
        )

    def put(
        self,
        item_id: str,
        payload: bytes,
        kind: RecordKind = RecordKind.GARMENT,
        *,
        deadline_at: float | None = None,
    ) -> PutResult:
        """Store a garment (or, with ``kind``, another record) durably (committed to disk when this returns).

        A second put for an item id already spooled, of either kind, is a duplicate and stores nothing.

        ``deadline_at`` (epoch seconds, the garment message's deadline) decides whether it goes out as live.

        Raises:
            SpoolFull: at the limit with policy reject_new, or a single payload larger than max_bytes.
        """
        size = len(payload)
        if self.max_bytes > 0 and size > self.max_bytes:
            raise SpoolFull(
                f"garment {item_id} is {size} bytes, more than the whole spool ({self.max_bytes})"
            )
        evicted: list[str] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT 1 FROM garments WHERE item_id = ?", (item_id,)).fetchone():
                    self._db.execute("COMMIT")
                    return PutResult(accepted=True, duplicate=True)
                count, total = self._totals()
                while self._over(count, total, size):
                    if self.full_policy is FullPolicy.REJECT_NEW:
                        raise SpoolFull(f"spool full ({count} garments, {total} bytes); refusing {item_id}")
                    row = self._db.execute(
                        "SELECT seq, item_id, size FROM garments ORDER BY seq LIMIT 1"
                    ).fetchone()
                    self._db.execute("DELETE FROM garments WHERE seq = ?", (row[0],))
                    evicted.append(row[1])
                    count, total = count - 1, total - row[2]
                self._db.execute(
                    "INSERT INTO garments (item_id, payload, size, enqueued_at, deadline_at, kind) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, payload, size, time.time(), deadline_at, RecordKind(kind).value),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for gone in evicted:
            logger.warning("spool full: evicted oldest garment", extra={"item_id": gone})
        return PutResult(accepted=True, evicted=tuple(evicted))

    def in_send_order(
        self, live_after: float, *, limit: int = 64, skip: Collection[str] = ()
    ) -> list[SpooledGarment]:
        """The next ``limit`` unacknowledged garments to send, leaving out ``skip`` (those in flight).

        Live garments come first: those whose deadline is after ``live_after`` (now plus the time a verdict
        needs to come back), earliest deadline first, so the one nearest its deadline goes next and none waits
        behind a later one. Then the backlog, oldest first: garments whose deadline has passed, or is too
        close, already have (or are about to get) their fail-safe command; their verdicts still matter for the
        audit trail and review, not for the line. A garment captured while the backlog drains is live, so it
        goes ahead of everything left in the backlog.
        """
        wanted = limit + len(skip)
        with self._lock:
            live = self._db.execute(
                "SELECT seq, item_id FROM garments WHERE set_aside_at IS NULL AND deadline_at > ? "
                "ORDER BY deadline_at, seq LIMIT ?",
                (live_after, wanted),
            ).fetchall()
            order = [seq for seq, item_id in live if item_id not in skip][:limit]
            if len(order) < limit:
                backlog = self._db.execute(
                    "SELECT seq, item_id FROM garments "
                    "WHERE set_aside_at IS NULL AND (deadline_at IS NULL OR deadline_at <= ?) "
                    "ORDER BY seq LIMIT ?",
                    (live_after, wanted),
                ).fetchall()
                order += [seq for seq, item_id in backlog if item_id not in skip][: limit - len(order)]
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM garments WHERE seq IN ({','.join('?' * len(order))})", order
            ).fetchall()
        by_seq = {row[0]: SpooledGarment(*row[:6], RecordKind(row[6])) for row in rows}
        return [by_seq[seq] for seq in order]

    def kind_of(self, item_id: str) -> RecordKind | None:
        """The kind of the record spooled for ``item_id``; None if nothing is."""
        with self._lock:
            row = self._db.execute("SELECT kind FROM garments WHERE item_id = ?", (item_id,)).fetchone()
        return RecordKind(row[0]) if row else None

    def mark_sent(self, item_id: str) -> None:
        """Count one send attempt (for metrics and poison-message detection)."""
        with self._lock:
            self._db.execute("UPDATE garments SET attempts = attempts + 1 WHERE item_id = ?", (item_id,))

    def ack(self, item_id: str) -> bool:
        """Drop an acknowledged garment; False if it was not in the spool (already acked)."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM garments WHERE item_id = ?", (item_id,))
        return cursor.rowcount > 0

    def attempts_and_age(self, item_id: str) -> tuple[int, float] | None:
        """How often the record was sent, and seconds since it was spooled; None if it is not spooled."""
        with self._lock:
            row = self._db.execute(
                "SELECT attempts, enqueued_at FROM garments WHERE item_id = ?", (item_id,)
            ).fetchone()
        return (int(row[0]), time.time() - row[1]) if row else None

    def set_aside(self, item_id: str, reason: str) -> bool:
        """Stop sending a record the cloud keeps refusing (a poison record). It stays on disk, out of the
        send order, until ``prune_set_aside`` removes it after the retention; False if not spooled."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE garments SET set_aside_at = ?, set_aside_reason = ? "
                "WHERE item_id = ? AND set_aside_at IS NULL",
                (time.time(), reason[:1000], item_id),
            )
        return cursor.rowcount > 0

    def set_aside_items(self) -> list[tuple[str, str]]:
        """(item id, reason) of the records set aside, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, set_aside_reason FROM garments WHERE set_aside_at IS NOT NULL "
                "ORDER BY set_aside_at"
            ).fetchall()
        return [(item_id, reason) for item_id, reason in rows]

    def prune_set_aside(self, older_than: float) -> int:
        """Delete records set aside before ``older_than`` (epoch seconds); returns how many."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM garments WHERE set_aside_at IS NOT NULL AND set_aside_at < ?", (older_than,)
            )
        return cursor.rowcount

    def depth(self) -> tuple[int, int]:
        """(records, payload bytes) waiting to be sent (not those set aside)."""
        with self._lock:
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM garments WHERE set_aside_at IS NULL"
            ).fetchone()
        return int(count), int(size)

    def __len__(self) -> int:
        return self.depth()[0]
