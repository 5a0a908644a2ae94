"""The routing policy: which garments the system settles by itself and which go to people, in what order.
 What the seed did, and what this policy changes:

* The seed's gate for automation was the mean *detector* score. The detector answers "is something here?", not
  "is the classification right?", and it is tuned for recall, so its score says little about the verdict. Here
  the gate is the classifier's own confidence in each region's answer: the probability of the tokens it chose
  for the ``type`` and ``severity`` fields (vLLM logprobs), and, when self-consistency sampling is on, the
  share of samples that agree. The region confidence is the smaller of the two when both exist; with neither,
  it is 0 and nothing is automated (an uncalibrated answer never acts on its own).
* In the seed a classifier "reject" always became "review", so nothing was ever rejected automatically, and a
  "reject" outranked its own severity. Here the garment decision comes from the constrained fields through the
  taxonomy's rule (reject from ``reject_at_severity`` up), never from free text or from the model's own
  decision field; that field is only checked for consistency with the severity it gave.
* Confidence is combined per decision, not averaged: a reject needs one region that surely is an unsellable
  defect (the most confident rejecting region counts); a pass needs every region surely harmless (the least
  confident region counts).

The detector still has two roles: a region the classifier calls an unsellable defect cannot be rejected
automatically when the detector barely saw it (``min_detector_score_for_auto_reject``: the classifier may be
hallucinating), and a region the classifier calls normal while the detector is nearly sure of a defect
(``detector_veto_score``) goes to a person (the classic source of leaked defects).

Bands (the seed's 0.95 / 0.70): confidence >= ``auto_threshold`` (0.95) is settled automatically; below it a
person decides, with priority high below ``high_priority_below`` (0.70), medium below
``medium_priority_below`` (0.85), low otherwise — raised to high whenever a region is severe or the classifier
failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, model_validator

from seamline.config.base import StrictModel
from seamline.domain import Decision, Priority, Route, Severity

UNKNOWN = "unknown"  # the type recorded when the classifier could not answer


class RoutingPolicyConfig(StrictModel):
    """The routing policy's thresholds (see cloud/routing/policy.py for what each one does)."""

    version: str = Field(default="p1", title="Version", description="Recorded on every verdict.")
    auto_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        title="Automatic at",
        description="Routing confidence needed to settle a garment without a person.",
    )
    high_priority_below: float = Field(
        default=0.70,
        ge=0,
        le=1,
        title="High priority below",
        description="Review priority high under this confidence.",
    )
    medium_priority_below: float = Field(
        default=0.85,
        ge=0,
        le=1,
        title="Medium priority below",
        description="Review priority medium under this confidence (low above).",
    )
    min_detector_score_for_auto_reject: float = Field(
        default=0.5,
        ge=0,
        le=1,
        title="Detector evidence for automatic reject",
        description="A rejecting region needs at least this detector score to be rejected automatically.",
    )
    detector_veto_score: float = Field(
        default=0.9,
        ge=0,
        le=1,
        title="Detector veto",
        description="A region called normal with a detector score at or above this goes to a person.",
    )
    severe_priority_high: bool = Field(
        default=True,
        title="Severe is urgent",
        description="A garment with a severe region is reviewed first.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RoutingPolicyConfig:
        if not self.high_priority_below <= self.medium_priority_below <= self.auto_threshold:
            raise ValueError("need high_priority_below <= medium_priority_below <= auto_threshold")
        return self


@dataclass(frozen=True)
class RegionResult:
    """What the classifier said about one crop."""

    crop_id: str
    detector_score: float
    type: str  # a taxonomy id, "normal", or "unknown" (classifier failed)
    severity: Severity | None  # None for normal / unknown
    suggested: Decision  # the classifier's own decision field (checked for consistency only)
    classifier_confidence: float | None = None  # from token log-probabilities, in [0, 1]
    agreement: float | None = None  # self-consistency agreement, in [0, 1]
    error: str | None = None  # why the classifier could not answer


@dataclass(frozen=True)
class RoutingDecision:
    """The garment's verdict before it is published."""

    decision: Decision
    route: Route
    priority: Priority
    confidence: float
    final: bool
    reasons: tuple[str, ...] = field(default=())  # why, for the audit log and the reviewer
    region_confidence: dict[str, float] = field(default_factory=dict)


class RoutingPolicy:
    """Decide one garment from its region results."""

    def __init__(
        self, config: RoutingPolicyConfig, *, reject_at: Severity, normal_id: str = "normal"
    ) -> None:
        self.config = config
        self.reject_at = reject_at
        self.normal_id = normal_id

    def rejects(self, region: RegionResult) -> bool:
        """Does this region make the garment unsellable by the taxonomy's rule?"""
        return (
            region.type not in (self.normal_id, UNKNOWN)
            and region.severity is not None
            and region.severity.rank >= self.reject_at.rank
        )

    def region_confidence(self, region: RegionResult) -> tuple[float, str | None]:
        """Confidence in a region's answer, and the reason it was capped (if it was)."""
        signals = [s for s in (region.classifier_confidence, region.agreement) if s is not None]
        confidence = min(signals) if signals else 0.0
        if not signals:
            return 0.0, f"{region.crop_id}: no confidence signal (logprobs or sampling)"
        if region.type == self.normal_id and region.detector_score >= self.config.detector_veto_score:
            return (
                0.0,
                f"{region.crop_id}: called normal but the detector is {region.detector_score:.2f} sure "
                "of a defect",
            )
        consistent = (region.suggested is Decision.REJECT) == self.rejects(
            region
        ) or region.suggested is Decision.REVIEW
        if not consistent:
            severity = region.severity.value if region.severity else "none"
            return (
                0.0,
                f"{region.crop_id}: decision {region.suggested.value} contradicts {region.type}/{severity}",
            )
        return float(min(max(confidence, 0.0), 1.0)), None

    def _priority(self, confidence: float, regions: list[RegionResult], urgent: bool) -> Priority:
        if urgent:
            return Priority.HIGH
        if self.config.severe_priority_high and any(r.severity is Severity.SEVERE for r in regions):
            return Priority.HIGH
        if confidence < self.config.high_priority_below:
            return Priority.HIGH
        if confidence < self.config.medium_priority_below:
            return Priority.MEDIUM
        return Priority.LOW

    def decide(self, regions: list[RegionResult]) -> RoutingDecision:
        """The garment's routing decision. ``regions`` must not be empty (no crops = the edge passes it)."""
        if not regions:
            raise ValueError("a garment reaching the routing policy has at least one region")
        failed = [r for r in regions if r.error is not None or r.type == UNKNOWN]
        if failed:
            reasons = tuple(f"{r.crop_id}: classifier failed: {r.error or 'no answer'}" for r in failed)
            return RoutingDecision(Decision.REVIEW, Route.HUMAN, Priority.HIGH, 0.0, False, reasons)

        scored = {r.crop_id: self.region_confidence(r) for r in regions}
        reasons = [why for _, why in scored.values() if why]
        confidences = {crop: c for crop, (c, _) in scored.items()}
        rejecting = [r for r in regions if self.rejects(r)]
        if rejecting:
            eligible = [
                r for r in rejecting if r.detector_score >= self.config.min_detector_score_for_auto_reject
            ]
            if not eligible:
                reasons.append(
                    "rejecting regions have detector scores below "
                    f"{self.config.min_detector_score_for_auto_reject}"
                )
            confidence = max((confidences[r.crop_id] for r in eligible), default=0.0)
            proposed = Decision.REJECT
        else:
            confidence = min(confidences.values())
            proposed = Decision.PASS
        if confidence >= self.config.auto_threshold:
            return RoutingDecision(
                proposed, Route.AUTO, Priority.NONE, confidence, True, tuple(reasons), confidences
            )
        reasons.append(
            f"confidence {confidence:.3f} below {self.config.auto_threshold} "
            f"for an automatic {proposed.value}"
        )
        priority = self._priority(confidence, regions, urgent=False)
        return RoutingDecision(
            Decision.REVIEW, Route.HUMAN, priority, confidence, False, tuple(reasons), confidences
        )
