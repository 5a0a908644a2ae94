"""The one clock: now, timezone-aware UTC (what every timestamp Seamline stores or sends is in)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
