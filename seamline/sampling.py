"""Deterministic sampling by id: the same garment is chosen by every process, every restart and every replay.

``draw(item_id, purpose)`` is a uniform number in [0, 1) fixed by a hash of the id and what it is drawn for;
``sampled(item_id, share, purpose)`` is ``draw < share``. Over many garments the share holds like a fair
coin's, and a smaller share picks a subset of a larger one. The cloud samples automatic verdicts for audit
with it (cloud/routing/audit.py); the edge samples the garments it passes itself (edge.audit).
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def draw(item_id: str, purpose: str = "audit") -> float:
    """A uniform number in [0, 1) fixed by the garment id and what it is drawn for."""
    digest = hashlib.sha256(f"{purpose}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def sampled(item_id: str, share: float, purpose: str = "audit") -> bool:
    """Is this garment in the ``share`` sampled for ``purpose``?"""
    return share > 0 and draw(item_id, purpose) < share
