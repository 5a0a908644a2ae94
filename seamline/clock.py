"""The one clock: now, timezone-aware UTC (what every timestamp Seamline stores or sends is in)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc)
