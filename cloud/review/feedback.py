"""Compare a reviewer's decision with the AI's: typed feedback per region and per garment (pure logic).

The seed typed only garment decisions (AI reject + human pass = false positive, AI pass + human reject =
false negative, "otherwise a classification error"), which counts agreements as errors and ignores the
regions. Here:

Per region (a crop the edge sent, or a box the reviewer drew for a defect the detector missed):
  - agreement: both say normal, or both name the same defect type (severity agreement is kept separately);
  - false_positive: the AI named a defect, the person says normal;
  - false_negative: the AI said normal (or the detector missed it: a drawn box), the person names a defect;
  - misclassification: both name a defect, different types;
  - unanswered: the classifier gave no answer (type "unknown"); not counted for or against the AI.

Per garment: a contradicted decision decides the type (AI reject, person pass: false positive; AI pass, person
reject: false negative); otherwise the worst region outcome (false negative > false positive >
misclassification), else agreement; unanswered when the AI answered for no region.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

NORMAL = "normal"
UNKNOWN = "unknown"


class Outcome(str, Enum):
    AGREEMENT = "agreement"
    FALSE_POSITIVE = "false_positive"
    FALSE_NEGATIVE = "false_negative"
    MISCLASSIFICATION = "misclassification"
    UNANSWERED = "unanswered"


ERRORS = (Outcome.FALSE_POSITIVE, Outcome.FALSE_NEGATIVE, Outcome.MISCLASSIFICATION)
_SEVERITY_OF_ERROR = {Outcome.FALSE_NEGATIVE: 3, Outcome.FALSE_POSITIVE: 2, Outcome.MISCLASSIFICATION: 1}


@dataclass(frozen=True)
class RegionOutcome:
    outcome: Outcome
    severity_agrees: bool | None  # None when not comparable (one side normal, unanswered, or a drawn box)


def region_outcome(
    ai_type: str | None, ai_severity: str | None, human_type: str, human_severity: str
) -> RegionOutcome:
    """Type one region. ``ai_type`` None means the detector never proposed it (a box the reviewer drew)."""
    human_defect = human_type != NORMAL
    if ai_type is None:
        return RegionOutcome(Outcome.FALSE_NEGATIVE if human_defect else Outcome.AGREEMENT, None)
    if ai_type == UNKNOWN:
        return RegionOutcome(Outcome.UNANSWERED, None)
    ai_defect = ai_type != NORMAL
    if ai_defect and not human_defect:
        return RegionOutcome(Outcome.FALSE_POSITIVE, None)
    if human_defect and not ai_defect:
        return RegionOutcome(Outcome.FALSE_NEGATIVE, None)
    if not ai_defect:
        return RegionOutcome(Outcome.AGREEMENT, None)
    if ai_type != human_type:
        return RegionOutcome(Outcome.MISCLASSIFICATION, None)
    return RegionOutcome(Outcome.AGREEMENT, ai_severity == human_severity)


def ai_call(region_decisions: Iterable[str]) -> str:
    """What the classifier suggested for the garment: reject if any region says reject, pass if all say pass,
    else review (it asked a person)."""
    decisions = list(region_decisions)
    if "reject" in decisions:
        return "reject"
    if decisions and all(d == "pass" for d in decisions):
        return "pass"
    return "review"


def garment_outcome(ai: str, human_decision: str, regions: Sequence[Outcome]) -> Outcome:
    """Type a garment from the AI's call, the person's decision (pass/reject) and its region outcomes."""
    if ai == "reject" and human_decision == "pass":
        return Outcome.FALSE_POSITIVE
    if ai == "pass" and human_decision == "reject":
        return Outcome.FALSE_NEGATIVE
    answered = [o for o in regions if o is not Outcome.UNANSWERED]
    if not answered and ai == "review":
        return Outcome.UNANSWERED
    errors = [o for o in answered if o in ERRORS]
    if errors:
        return max(errors, key=_SEVERITY_OF_ERROR.__getitem__)
    return Outcome.AGREEMENT
