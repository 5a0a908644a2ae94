"""Domain vocabulary shared by the edge and the cloud: decisions, routes, priorities, severities."""

from __future__ import annotations

from enum import Enum


class Severity(str, Enum):
    """How bad one defect is, per the taxonomy's rubric (the seed weights them 1, 2, 3)."""

    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"

    @property
    def rank(self) -> int:
        """1 for minor, 2 for moderate, 3 for severe."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.MINOR: 1, Severity.MODERATE: 2, Severity.SEVERE: 3}


class Decision(str, Enum):
    """What should happen to a garment."""

    PASS = "pass"
    REVIEW = "review"
    REJECT = "reject"


class Route(str, Enum):
    """Who settles a decision: the system on its own, or a person."""

    AUTO = "auto"
    HUMAN = "human"


class Priority(str, Enum):
    """Order in the human review queue (high first); ``none`` for automatic verdicts."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"


class LineAction(str, Enum):
    """The physical command the line's PLC carries out for one garment."""

    PASS = "pass"
    DIVERT_REVIEW = "divert_review"
    REJECT = "reject"


def expected_decision(severities: list[Severity], reject_at: Severity) -> Decision:
    """Ground-truth decision for a garment: reject if any defect reaches ``reject_at``, else pass.

    Truth is binary; ``review`` is a routing outcome, never a true label.
    """
    if any(s.rank >= reject_at.rank for s in severities):
        return Decision.REJECT
    return Decision.PASS
