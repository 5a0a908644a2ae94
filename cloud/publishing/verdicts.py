"""Build the garment's verdict from its classified regions and the routing decision."""

from __future__ import annotations

from cloud.classifiers.vllm_backend import RegionClassification
from cloud.records import GarmentRecord
from cloud.routing.policy import UNKNOWN, RoutingDecision
from seamline.clock import utcnow
from seamline.contract.messages import (
    DefectVerdict,
    ModelVersions,
    Verdict,
    VerdictError,
    VerdictRollout,
    VerdictTimestamps,
)
from seamline.domain import Decision


def build_verdict(
    record: GarmentRecord,
    classified: list[RegionClassification],
    routing: RoutingDecision,
    *,
    classifier_version: str,
    prompt_version: str,
    policy_version: str,
    classify_s: float,
    rollout: VerdictRollout | None = None,
) -> Verdict:
    """The verdict message for a garment classified in the cloud."""
    by_crop = {c.crop_id: c for c in record.crops}
    defects = []
    for result in classified:
        crop = by_crop[result.crop_id]
        answer = result.answer
        scores = {"detector": round(crop.detector_score, 6)}
        if result.confidence is not None:
            scores["classifier"] = round(result.confidence, 6)
        if result.agreement is not None:
            scores["agreement"] = round(result.agreement, 6)
        defects.append(
            DefectVerdict(
                crop_id=crop.crop_id,
                view_index=crop.view_index,
                type=answer.type if answer else UNKNOWN,
                severity=answer.severity.value if answer and answer.severity else "none",
                decision=answer.decision if answer else Decision.REVIEW,
                reason=(answer.reason if answer else f"Classifier failed: {result.error}")[:500],
                box=crop.box,
                scores=scores,
            )
        )
    failures = [r.error for r in classified if r.error]
    now = utcnow()
    return Verdict(
        item_id=record.item_id,
        site_id=record.site_id,
        line_id=record.line_id,
        station_id=record.station_id,
        source="cloud",
        final=routing.final,
        decision=routing.decision,
        route=routing.route,
        priority=routing.priority,
        confidence=round(routing.confidence, 6),
        defects=tuple(defects),
        models=ModelVersions(
            detector=record.detector_version,
            classifier=classifier_version,
            prompt=prompt_version,
            policy=policy_version,
        ),
        rollout=rollout,
        timings_ms={
            "uplink": max(0.0, (record.received_at - record.captured_at).total_seconds() * 1000),
            "classify": classify_s * 1000,
            "total": max(0.0, (now - record.captured_at).total_seconds() * 1000),
            **{f"edge_{stage}": value for stage, value in record.edge_timings_ms},
        },
        timestamps=VerdictTimestamps(
            captured_at=record.captured_at, decided_at=now, deadline_at=record.deadline_at
        ),
        error=VerdictError(code="classifier_failed", message="; ".join(failures)[:2000])
        if failures
        else None,
    )
