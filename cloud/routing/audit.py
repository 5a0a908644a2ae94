"""Audit sampling: a share of the garments the routing policy settles automatically also goes to people.

Automatic decisions are otherwise never checked, so their accuracy would be unknown, and the review queue only
ever sees the garments the policy was unsure of — a biased sample by construction. Each automatically settled
garment is therefore sampled with a configurable probability (default 2 %, per line): it keeps its automatic
verdict and line command, and is also queued at low priority as an *audit* item, reviewed blind (the console
hides the AI's answer until the reviewer has decided). The weekly report's accuracy of automatic decisions and
routing calibration rest on these samples.

The choice is a hash of the garment id, not a random draw (seamline/sampling.py): every replica, a restart
and a replay choose the same garments, and the share holds like a fair coin's over many garments.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from seamline.config.base import StrictModel
from seamline.sampling import draw, sampled

__all__ = ["AuditSamplingConfig", "draw", "sampled"]


class AuditSamplingConfig(StrictModel):
    """Which share of automatically settled garments is also reviewed, blind, as an audit sample."""

    auto_share: float = Field(
        default=0.02,
        ge=0,
        le=1,
        title="Audit share",
        description="Share of automatically settled garments also sent to review (blind, low priority).",
    )
    auto_share_by_line: dict[str, float] = Field(
        default_factory=dict,
        title="Audit share per line",
        description="line_id -> share, for lines that need another share than auto_share.",
    )

    @field_validator("auto_share_by_line")
    @classmethod
    def _shares(cls, shares: dict[str, float]) -> dict[str, float]:
        for line, share in shares.items():
            if not 0 <= share <= 1:
                raise ValueError(f"{line}: a share is between 0 and 1, not {share}")
        return shares

    def share_for(self, line_id: str) -> float:
        return self.auto_share_by_line.get(line_id, self.auto_share)
