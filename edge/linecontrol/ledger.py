"""The command ledger: which garments are waiting for a verdict, and the one command each one got.

SQLite, so that "exactly one command per garment" holds across reconnects, crashes and restarts: a command
is decided in one atomic update (only if none was decided before), recorded before it is published, and
re-published with the same ``command_id`` until the broker acknowledges it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from seamline.domain import LineAction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    station_id TEXT NOT NULL,
    registered_at REAL NOT NULL,
    deadline_at REAL NOT NULL,
    command_id TEXT,
    action TEXT,
    cause TEXT,
    verdict_id TEXT,
    decided_at REAL,
    published_at REAL,
    late_verdict_id TEXT,
    late_verdict_at REAL,
    expired_at REAL
);
CREATE INDEX IF NOT EXISTS items_undecided ON items (deadline_at) WHERE command_id IS NULL;
CREATE INDEX IF NOT EXISTS items_unpublished ON items (decided_at)
    WHERE command_id IS NOT NULL AND published_at IS NULL;
"""


@dataclass(frozen=True)
class DecidedCommand:
    """A line command as recorded in the ledger."""

    command_id: str
    item_id: str
    station_id: str
    action: LineAction
    cause: str
    verdict_id: str | None
    decided_at: float
    deadline_at: float


class CommandLedger:
    """Durable record of garments and their commands (one SQLite file)."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        if "expired_at" not in columns:  # a ledger written before commands could expire
            self._db.execute("ALTER TABLE items ADD COLUMN expired_at REAL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def register(self, item_id: str, station_id: str, deadline_at: float) -> bool:
        """Start waiting for a verdict on ``item_id``; False if it was already registered."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO items (item_id, station_id, registered_at, deadline_at) "
                "VALUES (?, ?, ?, ?)",
                (item_id, station_id, time.time(), deadline_at),
            )
        return cursor.rowcount == 1

    def decide(
        self,
        item_id: str,
        action: LineAction,
        cause: str,
        verdict_id: str | None = None,
        *,
        now: float | None = None,
    ) -> DecidedCommand | None:
        """Record the garment's one command, unless it already has one (then None). Unknown items: None."""
        command_id = uuid.uuid4().hex
        now = time.time() if now is None else now
        with self._lock:
            # One statement: on the fail-safe timer's path each one is another wait for the GIL under load.
            # fetchall() runs it to completion, which commits it.
            rows = self._db.execute(
                "UPDATE items SET command_id = ?, action = ?, cause = ?, verdict_id = ?, decided_at = ? "
                "WHERE item_id = ? AND command_id IS NULL RETURNING station_id, deadline_at",
                (command_id, LineAction(action).value, cause, verdict_id, now, item_id),
            ).fetchall()
        if not rows:
            return None
        station_id, deadline_at = rows[0]
        return DecidedCommand(
            command_id, item_id, station_id, LineAction(action), cause, verdict_id, now, deadline_at
        )

    def mark_published(self, command_id: str) -> None:
        """The broker acknowledged the command (QoS 1 PUBACK)."""
        with self._lock:
            self._db.execute(
                "UPDATE items SET published_at = ? WHERE command_id = ?", (time.time(), command_id)
            )

    def mark_expired(self, command_id: str) -> None:
        """The command was never acknowledged and the garment has passed the diverter: it is not sent any
        more. The PLC diverted the garment to review, as the contract tells it to when no command came."""
        with self._lock:
            self._db.execute(
                "UPDATE items SET expired_at = ? WHERE command_id = ? AND published_at IS NULL",
                (time.time(), command_id),
            )

    def record_late_verdict(self, item_id: str, verdict_id: str) -> None:
        """A verdict that came after the command was decided: kept for reporting, never acted on."""
        with self._lock:
            self._db.execute(
                "UPDATE items SET late_verdict_id = ?, late_verdict_at = ? "
                "WHERE item_id = ? AND late_verdict_id IS NULL",
                (verdict_id, time.time(), item_id),
            )

    def command_for(self, item_id: str) -> DecidedCommand | None:
        """The command decided for ``item_id``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT command_id, item_id, station_id, action, cause, verdict_id, decided_at, deadline_at "
                "FROM items WHERE item_id = ? AND command_id IS NOT NULL",
                (item_id,),
            ).fetchone()
        return _command(row) if row else None

    def is_registered(self, item_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone() is not None
            )

    def deadline_of(self, item_id: str) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT deadline_at FROM items WHERE item_id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def overdue(self, now: float, limit: int = 1000) -> list[str]:
        """Garments still without a command whose deadline is at or before ``now``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id FROM items WHERE command_id IS NULL AND deadline_at <= ? "
                "ORDER BY deadline_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def waiting(self, limit: int = -1) -> list[tuple[str, float]]:
        """Garments still without a command, with their deadlines, earliest first (``limit`` -1: all)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, deadline_at FROM items WHERE command_id IS NULL "
                "ORDER BY deadline_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [(item_id, deadline_at) for item_id, deadline_at in rows]

    def unpublished(self, limit: int = 1000) -> list[DecidedCommand]:
        """Decided commands the broker has not acknowledged yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT command_id, item_id, station_id, action, cause, verdict_id, decided_at, deadline_at "
                "FROM items "
                "WHERE command_id IS NOT NULL AND published_at IS NULL AND expired_at IS NULL "
                "ORDER BY decided_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [_command(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Waiting, decided and unpublished garments, and late verdicts (for metrics)."""
        with self._lock:
            waiting, decided, unpublished, expired, late = self._db.execute(
                "SELECT SUM(command_id IS NULL), SUM(command_id IS NOT NULL), "
                "SUM(command_id IS NOT NULL AND published_at IS NULL AND expired_at IS NULL), "
                "SUM(expired_at IS NOT NULL), SUM(late_verdict_id IS NOT NULL) FROM items"
            ).fetchone()
        return {
            "waiting": waiting or 0,
            "decided": decided or 0,
            "unpublished": unpublished or 0,
            "expired": expired or 0,
            "late_verdicts": late or 0,
        }

    def prune(self, older_than: float) -> int:
        """Forget garments whose command was settled (published or expired) before ``older_than`` (epoch
        seconds); returns rows removed. Garments still waiting or unpublished are never pruned."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM items WHERE (published_at IS NOT NULL OR expired_at IS NOT NULL) "
                "AND decided_at < ?",
                (older_than,),
            )
        return cursor.rowcount


def _command(row: tuple) -> DecidedCommand:
    command_id, item_id, station_id, action, cause, verdict_id, decided_at, deadline_at = row
    return DecidedCommand(
        command_id, item_id, station_id, LineAction(action), cause, verdict_id, decided_at, deadline_at
    )
