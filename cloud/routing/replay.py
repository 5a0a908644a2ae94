"""Replay the routing policy on published verdicts: what other thresholds would have done.

A cloud verdict carries every input the policy used — per region the detector score, the classifier's
type, severity, decision field, token-probability confidence and self-consistency agreement, and whether the
classifier failed — so re-deciding it under another ``RoutingPolicyConfig`` is exact, with no model call.
This is the threshold simulation the evaluation work builds on; the end-to-end benchmark sweeps the bands
with it.
"""

from __future__ import annotations

from typing import Any

from cloud.routing.policy import UNKNOWN, RegionResult, RoutingDecision, RoutingPolicy
from seamline.domain import Decision, Severity


def regions_from_verdict(verdict: dict[str, Any]) -> list[RegionResult]:
    """The policy's inputs, recovered from a cloud verdict's JSON."""
    if verdict.get("source") != "cloud":
        raise ValueError(f"verdict {verdict.get('verdict_id')}: only cloud verdicts carry classifier results")
    error = (verdict.get("error") or {}).get("message")
    regions = []
    for defect in verdict.get("defects", []):
        scores = defect.get("scores", {})
        severity = defect.get("severity")
        regions.append(
            RegionResult(
                crop_id=defect["crop_id"],
                detector_score=float(scores.get("detector", 0.0)),
                type=defect["type"],
                severity=Severity(severity) if severity not in (None, "none") else None,
                suggested=Decision(defect["decision"]),
                classifier_confidence=scores.get("classifier"),
                agreement=scores.get("agreement"),
                error=error if defect["type"] == UNKNOWN else None,
            )
        )
    return regions


def replay(verdict: dict[str, Any], policy: RoutingPolicy) -> RoutingDecision:
    """The routing ``policy`` gives for the garment behind ``verdict``."""
    return policy.decide(regions_from_verdict(verdict))
