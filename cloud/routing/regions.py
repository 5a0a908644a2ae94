"""What the routing policy reads from a classified garment: one ``RegionResult`` per crop."""

from __future__ import annotations

from cloud.classifiers.vllm_backend import RegionClassification
from cloud.records import GarmentRecord
from cloud.routing.policy import UNKNOWN, RegionResult
from seamline.domain import Decision


def region_results(record: GarmentRecord, classified: list[RegionClassification]) -> list[RegionResult]:
    """What the routing policy needs from each crop."""
    by_crop = {c.crop_id: c for c in record.crops}
    results = []
    for result in classified:
        crop = by_crop[result.crop_id]
        answer = result.answer
        results.append(
            RegionResult(
                crop_id=result.crop_id,
                detector_score=crop.detector_score,
                type=answer.type if answer else UNKNOWN,
                severity=answer.severity if answer else None,
                suggested=answer.decision if answer else Decision.REVIEW,
                classifier_confidence=result.confidence,
                agreement=result.agreement,
                error=result.error,
            )
        )
    return results
